"""Mounted at /accounts/ just before allauth's own URLs (qmailing/urls.py).

Sign-up, sign-in, passwords, email, MFA and sessions are allauth's views. A few are served here first, at
allauth's own paths, only so a form with errors answers 400 and a throttled sign-in 429 (accounts.views).
The old addresses (/accounts/signin/, …) and their names (accounts:signin, …) keep working as aliases.
"""

from allauth.account import views as allauth_views
from django.urls import path, re_path
from django.views.generic import RedirectView

from accounts import views

app_name = "accounts"


def _to(pattern_name):
    return RedirectView.as_view(pattern_name=pattern_name, query_string=True, permanent=True)


urlpatterns = [
    # allauth's paths (reverse them by allauth's names: account_login, account_signup, …)
    path("login/", views.LoginView.as_view()),
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    re_path(r"^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$", views.PasswordResetFromKeyView.as_view()),
    path("reauthenticate/", views.ReauthenticateView.as_view()),
    path("2fa/authenticate/", views.MfaAuthenticateView.as_view()),
    path("2fa/totp/activate/", views.ActivateTOTPView.as_view()),
    # The addresses before allauth: bookmarks and links in old mail still lead somewhere sensible.
    path("signin/", _to("account_login"), name="signin"),
    path("signout/", allauth_views.logout, name="signout"),  # POST signs out, as it always did
    path("password/reset/sent/", _to("account_reset_password_done")),
    path("password/reset/complete/", _to("account_login")),
    path("password/change/done/", _to("security:index")),
    # An old-style reset link (uidb64/token): ask for a new one.
    re_path(r"^password/reset/(?!key/|done/)[^/]+/[^/]+/$", _to("account_reset_password")),
]
