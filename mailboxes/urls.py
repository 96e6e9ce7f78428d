"""Every address of the mailboxes app: the mailbox pages (namespace `mailboxes`), the mail pages (`mail`),
the signed attachment links and Mailgun's inbound webhook. Included at the root by qmailing/urls.py."""

from django.urls import include, path, re_path

from mailboxes.inbound.esp import MailgunInboundView
from mailboxes.views import attachments, compose, forwarding, mail, mailboxes

mailbox_urls = [
    path("new/", mailboxes.mailbox_create_view, name="create"),
    path("<uuid:mailbox_id>/", mailboxes.mailbox_detail_view, name="detail"),
    path("<uuid:mailbox_id>/status/", mailboxes.mailbox_status_view, name="status"),
    path("<uuid:mailbox_id>/delete/", mailboxes.mailbox_delete_view, name="delete"),
    path("<uuid:mailbox_id>/mail/", mail.mailbox_mail_view, name="mail"),
    path("<uuid:mailbox_id>/compose/", compose.mailbox_compose_view, name="compose"),
    path("groups/", mailboxes.group_list_view, name="groups"),
    path("groups/<uuid:group_id>/", mailboxes.group_detail_view, name="group"),
    path("forwarding/confirm/<str:token>/", forwarding.forwarding_confirm_view, name="forwarding-confirm"),
]

mail_urls = [
    path("", mail.inbox_view, name="inbox"),  # every mailbox at once: all inboxes, all starred, …
    path("search/", mail.mail_search_view, name="search"),
    path("bulk/", mail.bulk_action_view, name="bulk"),
    path("trash/empty/", mail.trash_empty_view, name="empty-trash"),
    path("compose/", compose.compose_view, name="compose"),
    path("drafts/", compose.drafts_view, name="drafts"),
    path("drafts/<uuid:draft_id>/delete/", compose.draft_delete_view, name="draft-delete"),
    path("<uuid:email_id>/", mail.email_detail_view, name="detail"),
    path("<uuid:email_id>/html", mail.email_html_view, name="html"),
    path("<uuid:email_id>/attachments/<int:index>", attachments.attachment_download_view, name="attachment"),
    path("<uuid:email_id>/action/", mail.email_action_view, name="action"),
    path("<uuid:email_id>/reply/", compose.reply_view, name="reply"),
]

urlpatterns = [
    path("mailboxes/", include((mailbox_urls, "mailboxes"))),
    path("mail/", include((mail_urls, "mail"))),
    path("dl/attachments/<str:token>", attachments.attachment_download, name="attachment-download"),  # signed, 10 minutes
    # Mailgun's inbound mail (406 for refused mail); it must come before anymail's own URLs in qmailing/urls.py.
    re_path(r"^anymail/mailgun/inbound(_mime)?/$", MailgunInboundView.as_view(), name="mailgun_inbound_webhook"),
]
