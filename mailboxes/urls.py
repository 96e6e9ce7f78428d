from django.urls import path

from mailboxes import compose_views, mail_views, views

app_name = "mailboxes"
urlpatterns = [
    path("new/", views.mailbox_create_view, name="create"),
    path("<uuid:mailbox_id>/", views.mailbox_detail_view, name="detail"),
    path("<uuid:mailbox_id>/status/", views.mailbox_status_view, name="status"),
    path("<uuid:mailbox_id>/delete/", views.mailbox_delete_view, name="delete"),
    path("<uuid:mailbox_id>/mail/", mail_views.mailbox_mail_view, name="mail"),
    path("<uuid:mailbox_id>/compose/", compose_views.compose_view, name="compose"),
    path("groups/", views.group_list_view, name="groups"),
    path("groups/<uuid:group_id>/", views.group_detail_view, name="group"),
]
