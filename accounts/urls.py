"""Every address of the accounts app, included at the root by qmailing/urls.py just before allauth's own URLs:

- /accounts/ (namespace `accounts`): sign-up, sign-in, passwords, email, MFA and sessions are allauth's
  views. A few are served here first, at allauth's own paths, only so a form with errors answers 400 and a
  throttled sign-in 429 (accounts.views.auth). The old addresses (/accounts/signin/, …) and their names
  (accounts:signin, …) keep working as aliases.
- /settings/security/ (`security`): links to allauth's pages above, and deleting the account.
- /settings/developers/ (`developers`): tokens, the "Connect to Claude" wizard, OAuth apps, usage.
"""

from allauth.account import views as allauth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts.views import auth, developers, security


def _to(pattern_name):
    return RedirectView.as_view(pattern_name=pattern_name, query_string=True, permanent=True)


account_urls = [
    # allauth's paths (reverse them by allauth's names: account_login, account_signup, …)
    path("login/", auth.LoginView.as_view()),
    path("signup/", auth.SignupView.as_view(), name="signup"),
    path("password/change/", auth.PasswordChangeView.as_view(), name="password_change"),
    path("password/reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    re_path(r"^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$", auth.PasswordResetFromKeyView.as_view()),
    path("reauthenticate/", auth.ReauthenticateView.as_view()),
    path("2fa/authenticate/", auth.MfaAuthenticateView.as_view()),
    path("2fa/totp/activate/", auth.ActivateTOTPView.as_view()),
    # The addresses before allauth: bookmarks and links in old mail still lead somewhere sensible.
    path("signin/", _to("account_login"), name="signin"),
    path("signout/", allauth_views.logout, name="signout"),  # POST signs out, as it always did
    path("password/reset/sent/", _to("account_reset_password_done")),
    path("password/reset/complete/", _to("account_login")),
    path("password/change/done/", _to("security:index")),
    # An old-style reset link (uidb64/token): ask for a new one.
    re_path(r"^password/reset/(?!key/|done/)[^/]+/[^/]+/$", _to("account_reset_password")),
]

security_urls = [
    path("", security.security, name="index"),
    path("delete/", security.delete, name="delete"),
]

developer_urls = [
    path("", developers.developers, name="index"),
    path("connect/", developers.connect, name="connect"),
    path("tokens/<int:token_id>/revoke/", developers.revoke, name="revoke"),
    path("oauth-apps/<int:application_id>/revoke/", developers.revoke_oauth_app, name="revoke_oauth_app"),
]

urlpatterns = [
    path("accounts/", include((account_urls, "accounts"))),
    path("settings/security/", include((security_urls, "security"))),
    path("settings/developers/", include((developer_urls, "developers"))),
]
