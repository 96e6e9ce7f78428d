from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login, logout
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import SignInForm, SignUpForm
from accounts.selectors import plan_catalogue
from accounts.services import account_signup, user_authenticate
from domains.selectors import domain_list
from mailboxes.selectors import group_list, mailbox_list
from qmailing.errors import AppError, RateLimited
from qmailing.forms import add_app_error
from qmailing.web import account_view, render_form


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = account_signup(email=form.cleaned_data["email"], password=form.cleaned_data["password"],
                                  full_name=form.cleaned_data["full_name"])
        except AppError as exc:
            add_app_error(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard")
    return render_form(request, "accounts/signup.html", {"form": form})


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signin(request):
    form = SignInForm(request.POST or None)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "POST" and form.is_valid():
        try:
            user = user_authenticate(request=request, email=form.cleaned_data["email"], password=form.cleaned_data["password"])
        except RateLimited as exc:
            form.add_error(None, exc.detail)
            response = render(request, "accounts/signin.html", {"form": form, "next": next_url}, status=exc.status)
            response["Retry-After"] = str(exc.extra["retryAfter"])
            return response
        if user is None:
            form.add_error(None, "That email and password do not match an account.")
        else:
            login(request, user)
            if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
                return redirect(next_url)
            return redirect("dashboard")
    return render_form(request, "accounts/signin.html", {"form": form, "next": next_url})


def admin_login(request):
    """The admin's own login page (its form is AdminSignInForm), answering 429 with Retry-After when throttled."""
    response = admin.site.login(request)
    form = (getattr(response, "context_data", None) or {}).get("form")
    if form is not None and form.rate_limited is not None:
        response.status_code = form.rate_limited.status
        response["Retry-After"] = str(form.rate_limited.extra["retryAfter"])
    return response


@require_POST
def signout(request):
    logout(request)
    return redirect("accounts:signin")


@account_view
def dashboard(request, account):
    context = {
        "account": account,
        "plan": account.plan,
        "domains": domain_list(account=account),
        "mailboxes": mailbox_list(account=account),
        "groups": group_list(account=account),
    }
    return render(request, "dashboard.html", context)


@account_view
def plan_view(request, account):
    plans, groups = plan_catalogue()
    return render(request, "accounts/plan.html", {"account": account, "plans": plans, "groups": groups,
                                                  "contact_address": settings.QMAILING_PLAN_CONTACT_EMAIL})
