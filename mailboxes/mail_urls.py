from django.urls import path

from mailboxes import compose_views, mail_views

app_name = "mail"
urlpatterns = [
    path("search/", mail_views.mail_search_view, name="search"),
    path("<uuid:email_id>/", mail_views.email_detail_view, name="detail"),
    path("<uuid:email_id>/html", mail_views.email_html_view, name="html"),
    path("<uuid:email_id>/attachments/<int:index>", mail_views.attachment_download_view, name="attachment"),
    path("<uuid:email_id>/action/", mail_views.email_action_view, name="action"),
    path("<uuid:email_id>/reply/", compose_views.reply_view, name="reply"),
]
