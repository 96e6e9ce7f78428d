"""Settings → Security: links to allauth's pages (password, email addresses, two-factor, sessions) and
deleting the account, which asks for the email address and the password again."""

from allauth.account.adapter import get_adapter
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.services import account_close
from accounts.tasks import account_delete_task
from core.enqueue import enqueue_on_commit
from accounts.web import account_view
from core.web import render_form


class AccountDeleteForm(forms.Form):
    email = forms.CharField(max_length=254, label="Your email address",
                            widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(max_length=4096, label="Your password", widget=forms.PasswordInput)

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request, self.user = request, request.user

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email.lower() != self.user.email.lower():
            raise forms.ValidationError("Type the email address you sign in with.")
        return email

    def clean_password(self):
        password = self.cleaned_data["password"]
        # Through allauth's adapter: wrong passwords count against the same sign-in budget (ValidationError over it).
        user = get_adapter(self.request).authenticate(self.request, email=self.user.email, password=password)
        if user is None or user.pk != self.user.pk:
            raise forms.ValidationError("That is not your password.")
        return password


@account_view
def security(request, account):
    user = request.user
    types = set(Authenticator.objects.filter(user=user).values_list("type", flat=True))
    context = {
        "account": account,
        "totp_active": Authenticator.Type.TOTP in types,
        "passkeys": Authenticator.objects.filter(user=user, type=Authenticator.Type.WEBAUTHN).count(),
        "recovery_codes_active": Authenticator.Type.RECOVERY_CODES in types,
        "sessions": UserSession.objects.filter(user=user).count(),
        "emails": user.emailaddress_set.count(),
    }
    return render(request, "accounts/security.html", context)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@account_view
def delete(request, account):
    form = AccountDeleteForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        account_close(account=account)  # at once: signed out everywhere, tokens dead, new mail refused
        enqueue_on_commit(account_delete_task, str(account.pk))  # the rest, however much mail; swept if lost
        logout(request)
        messages.success(request, "Your account is closed and its mail, files, domains and tokens are being deleted.")
        return redirect("account_login")
    return render_form(request, "accounts/security_delete.html", {"account": account, "form": form})

