"""django-allauth, fitted to QMailing: sign-up opens an account (plan + mailbox), links in mail follow
QMAILING_BASE_URL (never the Host header), mail comes from the shared domain, and the rate limits count
the client the way every other limit here does (core.ratelimit.client_ip, proxy-aware)."""

import base64
import hashlib
from urllib.parse import quote

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from cryptography.fernet import Fernet
from django.conf import settings
from django.urls import reverse

from accounts.services import account_provision_for_user, signin_rate_limited
from core import ratelimit
from accounts.web import welcome


class AccountAdapter(DefaultAccountAdapter):
    def __init__(self, request=None):
        super().__init__(request)
        # The words the admin's login uses too (accounts.services.signin_rate_limited), naming the wait.
        self.error_messages = {**self.error_messages, "too_many_login_attempts": signin_rate_limited().detail}

    def save_user(self, request, user, form, commit=True):
        """A sign-up saves the user only: the account and its mailbox come when the address is confirmed
        (confirm_email), so an address nobody confirmed holds no mailbox and no name on the shared domain."""
        user = super().save_user(request, user, form, commit=False)
        user.email = user.email.strip().lower()
        user.full_name = (form.cleaned_data.get("full_name") or "").strip()[:120]
        if commit:
            user.save()
        return user

    def confirm_email(self, request, email_address):
        confirmed = super().confirm_email(request, email_address)
        if confirmed and email_address.user.account_id is None:
            account = account_provision_for_user(user=email_address.user)  # on FREE, with a shared-domain mailbox
            welcome(request, account)
        return confirmed

    def get_from_email(self):
        return f"QMailing <no-reply@{settings.QMAILING_SHARED_DOMAIN}>"

    def get_client_ip(self, request):
        return ratelimit.client_ip(request)

    def get_email_confirmation_url(self, request, emailconfirmation):
        return settings.QMAILING_BASE_URL + reverse("account_confirm_email", args=[emailconfirmation.key])

    def get_reset_password_from_key_url(self, key):
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return settings.QMAILING_BASE_URL + path.replace("UID-KEY", quote(key))


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored as Fernet ciphertext, under a key derived from SECRET_KEY
    (allauth keeps them in the clear otherwise, readable by anyone with the database or the admin)."""

    @staticmethod
    def _fernet():
        key = hashlib.sha256(b"qmailing-mfa-secrets\0" + settings.SECRET_KEY.encode("utf-8")).digest()
        return Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, text):
        return self._fernet().encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, encrypted_text):
        return self._fernet().decrypt(encrypted_text.encode("ascii")).decode("utf-8")
