from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from accounts.views import dashboard, plan_view

admin.site.site_header = "QMailing administration"
admin.site.site_title = "QMailing admin"

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("accounts/", include("accounts.urls")),
    path("settings/plan", plan_view, name="plan"),
    path("domains/", include("domains.urls")),
    path("mailboxes/", include("mailboxes.urls")),
    path("mail/", include("mailboxes.mail_urls")),
    path("docs/errors", TemplateView.as_view(template_name="docs/errors.html"), name="error-docs"),
    path("anymail/", include("anymail.urls")),  # ESP webhooks: inbound mail and delivery tracking
    path("admin/", admin.site.urls),
]
