from allauth.account import views as allauth_views
from allauth.mfa.base import views as mfa_views
from allauth.mfa.totp import views as totp_views
from django.conf import settings

from accounts.services import signin_rate_limited


class FormStatusMixin:
    """allauth's form views answering like every other form here: 400 when the form shows errors, and a 429
    from allauth's rate limits with Retry-After (the limit's window: allauth does not say how much of it is left)."""

    retry_after = 60  # allauth's per-minute limits on these views

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        if response.status_code == 429 and not response.has_header("Retry-After"):
            response["Retry-After"] = str(self.retry_after)
        return response

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class LoginView(FormStatusMixin, allauth_views.LoginView):
    """allauth's sign-in; a throttled attempt (allauth's login_failed limit) answers 429 with Retry-After."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if any(error.code == "too_many_login_attempts" for error in form.errors.as_data().get("__all__", [])):
            exc = signin_rate_limited()
            response.status_code = exc.status
            response["Retry-After"] = str(exc.extra["retryAfter"])
        return response


class SignupView(FormStatusMixin, allauth_views.SignupView):
    pass


class PasswordChangeView(FormStatusMixin, allauth_views.PasswordChangeView):
    pass


class PasswordResetView(FormStatusMixin, allauth_views.PasswordResetView):
    @property
    def retry_after(self):
        return settings.QMAILING_SIGNIN_WINDOW_SECONDS  # reset_password counts per this window


class PasswordResetFromKeyView(FormStatusMixin, allauth_views.PasswordResetFromKeyView):
    pass


class ReauthenticateView(FormStatusMixin, allauth_views.ReauthenticateView):
    pass


class MfaAuthenticateView(FormStatusMixin, mfa_views.AuthenticateView):
    pass


class ActivateTOTPView(FormStatusMixin, totp_views.ActivateTOTPView):
    pass
