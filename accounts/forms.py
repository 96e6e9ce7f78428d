from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts.services import user_authenticate
from qmailing.errors import RateLimited


class SignUpForm(forms.Form):
    full_name = forms.CharField(max_length=120, required=False, label="Your name")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, min_length=1, help_text="At least 10 characters, not a common password.")


class SignInForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput)


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
