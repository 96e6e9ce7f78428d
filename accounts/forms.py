from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.mfa.webauthn.forms import AddWebAuthnForm
from django import forms
from django.contrib.auth.hashers import make_password


class SignUpForm(AllauthSignupForm):
    """allauth's sign-up (email, password) with the optional name the account and its mailbox are shown under."""

    full_name = forms.CharField(max_length=120, required=False, label="Your name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = "At least 10 characters, not a common password."
        self.order_fields(["full_name", "email", "password1"])

    def try_save(self, request):
        """For an address that already has an account allauth saves nothing and mails its owner instead; the
        password is hashed anyway and thrown away. Hashing is nearly all of a new sign-up's time (PBKDF2, ~0.4 s
        against ~0.03 s for the rest), so without it the response time alone says the address is registered.

        Here rather than in the adapter's send_account_already_exists_mail: that mail is skipped while the
        address's verification mail cooldown runs, and the hash must not be (a new address always pays it)."""
        if self.account_already_exists:
            make_password(self.cleaned_data.get("password1"))
        return super().try_save(request)


class AddPasskeyForm(AddWebAuthnForm):
    """allauth's "add a security key", passwordless by default: the Security page offers it as a way to sign in
    without a password, which a key added without it would not give."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "passwordless" in self.fields:
            self.fields["passwordless"].initial = True
