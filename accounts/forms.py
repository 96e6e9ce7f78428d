from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.mfa.webauthn.forms import AddWebAuthnForm
from django import forms


class SignUpForm(AllauthSignupForm):
    """allauth's sign-up (email, password) with the optional name the account and its mailbox are shown under."""

    full_name = forms.CharField(max_length=120, required=False, label="Your name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = "At least 10 characters, not a common password."
        self.order_fields(["full_name", "email", "password1"])


class AddPasskeyForm(AddWebAuthnForm):
    """allauth's "add a security key", passwordless by default: the Security page offers it as a way to sign in
    without a password, which a key added without it would not give."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "passwordless" in self.fields:
            self.fields["passwordless"].initial = True
