from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts.services import user_authenticate
from qmailing.errors import RateLimited


class SignUpForm(AllauthSignupForm):
    """allauth's sign-up (email, password) with the optional name the account and its mailbox are shown under."""

    full_name = forms.CharField(max_length=120, required=False, label="Your name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = "At least 10 characters, not a common password."
        self.order_fields(["full_name", "email", "password1"])


class AdminSignInForm(AdminAuthenticationForm):
    """The admin's login form, checking the password through the same throttled `user_authenticate` as the dashboard."""

    rate_limited = None  # the RateLimited error when the attempt was refused; the view turns it into a 429

    def clean(self):
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if email is not None and password:
            try:
                self.user_cache = user_authenticate(request=self.request, email=email, password=password)
            except RateLimited as exc:
                self.rate_limited = exc
                raise ValidationError(exc.detail, code=exc.code)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)  # active, and staff
        return self.cleaned_data
