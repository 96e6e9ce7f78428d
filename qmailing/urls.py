"""The project's URLs: its own pages (the overview, the plan, the favicon, the docs), then each app's URL list
(`<app>/urls.py`, every one included at the root the same way: it names its own prefixes and namespaces),
then the libraries' and the agent surface's."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from allauth.account.decorators import secure_admin_login
from qmailing.pages import dashboard, plan_view
from agent.mcp.docs import mcp_docs
from agent.rest import api_urlpatterns
from qmailing.web import favicon

admin.site.site_header = "QMailing administration"
admin.site.site_title = "QMailing admin"
# The admin signs in through the dashboard's sign-in (allauth): the same rate limits and the second factor.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("favicon.ico", favicon, name="favicon"),
    path("settings/plan", plan_view, name="plan"),
    path("docs/errors", TemplateView.as_view(template_name="docs/errors.html"), name="error-docs"),
    path("docs/mcp", mcp_docs, name="mcp-docs"),  # how to connect an agent, generated from the registry
    # /accounts/ (our status codes at a few of allauth's paths, the old addresses), /settings/security/,
    # /settings/developers/: before allauth's URLs, which share the /accounts/ prefix.
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),  # sign-up, sign-in, email, passwords, MFA (2fa/), sessions (sessions/)
    path("", include("domains.urls")),  # /domains/
    # /mailboxes/, /mail/, /dl/attachments/ (signed, 10 minutes), Mailgun's inbound webhook: before anymail's URLs.
    path("", include("mailboxes.urls")),
    path("", include("webhooks.urls")),  # /settings/webhooks/
    path("anymail/", include("anymail.urls")),  # the ESPs' webhooks: delivery tracking, inbound mail
    path("admin/", admin.site.urls),
    path("", include("agent.oauth_urls")),  # OAuth 2.1: /.well-known/oauth-*, /oauth/authorize|token|register
    *api_urlpatterns(),  # /api/v1/pub/…, generated from the operation registry; problem+json 404 for the rest of /api/
]
