from django.urls import path

from accounts import views
from accounts.passwords import password_urls

app_name = "accounts"
urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("signin/", views.signin, name="signin"),
    path("signout/", views.signout, name="signout"),
    *password_urls,
]
