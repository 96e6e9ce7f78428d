"""The dashboard's pages of an account: sign-up and sign-in as allauth serves them (auth), Settings → Security
(security), Settings → Developers (developers). Their URLs are in accounts/urls.py."""
