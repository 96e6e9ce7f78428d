from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView

from accounts.developers import developer_urls
from allauth.account.decorators import secure_admin_login
from accounts.security import security_urls
from qmailing.pages import dashboard, plan_view
from mailboxes.inbound.esp import MailgunInboundView
from mailboxes.store.download import attachment_download
from mailboxes.web.urls import mail_urls, mailbox_urls
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
    path("accounts/", include("accounts.urls")),  # our status codes at a few of allauth's paths, the old addresses
    path("accounts/", include("allauth.urls")),  # sign-up, sign-in, email, passwords, MFA (2fa/), sessions (sessions/)
    path("settings/plan", plan_view, name="plan"),
    path("settings/security/", include(security_urls)),  # links to the pages above, and deleting the account
    path("settings/developers/", include(developer_urls)),  # tokens, the "Connect to Claude" wizard, usage
    path("settings/webhooks/", include("webhooks.urls")),
    path("domains/", include("domains.urls")),
    path("mailboxes/", include(mailbox_urls)),
    path("mail/", include(mail_urls)),
    path("docs/errors", TemplateView.as_view(template_name="docs/errors.html"), name="error-docs"),
    path("docs/mcp", mcp_docs, name="mcp-docs"),  # how to connect an agent, generated from the registry
    path("dl/attachments/<str:token>", attachment_download, name="attachment-download"),  # signed, 10 minutes
    # ESP webhooks: inbound mail and delivery tracking (Mailgun inbound answers 406 for refused mail).
    re_path(r"^anymail/mailgun/inbound(_mime)?/$", MailgunInboundView.as_view(), name="mailgun_inbound_webhook"),
    path("anymail/", include("anymail.urls")),
    path("admin/", admin.site.urls),
    path("", include("agent.oauth_urls")),  # OAuth 2.1: /.well-known/oauth-*, /oauth/authorize|token|register
    *api_urlpatterns(),  # /api/v1/pub/…, generated from the operation registry; problem+json 404 for the rest of /api/
]
