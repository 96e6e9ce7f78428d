from django.urls import path

from domains import views

app_name = "domains"
urlpatterns = [
    path("add/", views.domain_add_view, name="add"),
    path("<uuid:domain_id>/", views.domain_detail_view, name="detail"),
    path("<uuid:domain_id>/verify/", views.domain_verify_view, name="verify"),
    path("<uuid:domain_id>/delete/", views.domain_delete_view, name="delete"),
]
