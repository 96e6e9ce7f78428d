"""The domain pages, at /domains/ (included at the root by qmailing/urls.py)."""

from django.urls import include, path

from domains import views

app_name = "domains"
pages = [
    path("add/", views.domain_add_view, name="add"),
    path("<uuid:domain_id>/", views.domain_detail_view, name="detail"),
    path("<uuid:domain_id>/verify/", views.domain_verify_view, name="verify"),
    path("<uuid:domain_id>/delete/", views.domain_delete_view, name="delete"),
]
urlpatterns = [path("domains/", include(pages))]
