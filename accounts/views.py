from allauth.account import views as allauth_views
from allauth.mfa.base import views as mfa_views
from allauth.mfa.totp import views as totp_views
from django.conf import settings
from django.shortcuts import render

from accounts.selectors import plan_catalogue, plan_limits
from accounts.services import signin_rate_limited
from domains.selectors import domain_list
from mailboxes.outbound.ledger import sends_in_window
from mailboxes.selectors import group_list, mailbox_list
from qmailing.web import account_view


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


@account_view
def dashboard(request, account):
    domains, mailboxes = list(domain_list(account=account)), list(mailbox_list(account=account))
    context = {
        "account": account,
        "plan": account.plan,
        "domains": domains,
        "mailboxes": mailboxes,
        "groups": group_list(account=account),
        "limits": plan_limits(account=account, domains=len(domains),
                              mailboxes=len(mailboxes), sends=sends_in_window(account=account)),
    }
    return render(request, "dashboard.html", context)


@account_view
def plan_view(request, account):
    plans, groups = plan_catalogue()
    return render(request, "accounts/plan.html", {"account": account, "plans": plans, "groups": groups,
                                                  "contact_address": settings.QMAILING_PLAN_CONTACT_EMAIL})
