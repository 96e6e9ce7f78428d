"""Password reset and change: Django's own auth views in the product's templates.

The reset request answers the same for every address (Django's PasswordResetForm sends only to active users
with a usable password and says nothing either way) and is throttled per address typed and per client IP.
The mail goes through the configured EMAIL_BACKEND; its link points at QMAILING_BASE_URL, not the Host header.
"""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from accounts.services import password_reset_throttle
from qmailing.errors import RateLimited


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    @property
    def extra_email_context(self):
        return {"base_url": settings.QMAILING_BASE_URL}

    @property
    def from_email(self):
        return f"QMailing <no-reply@{settings.QMAILING_SHARED_DOMAIN}>"

    def form_valid(self, form):
        try:
            password_reset_throttle(request=self.request, email=form.cleaned_data["email"])
        except RateLimited as exc:
            form.add_error(None, exc.detail)
            response = self.render_to_response(self.get_context_data(form=form), status=exc.status)
            response["Retry-After"] = str(exc.extra["retryAfter"])
            return response
        return super().form_valid(form)

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


password_urls = [
    path("password/reset/", PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
         name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password/reset/complete/",
         auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
         name="password_reset_complete"),
    path("password/change/", PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_change_done.html"),
         name="password_change_done"),
]
