"""Helpers shared by the dashboard's server-rendered views."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from qmailing.errors import NotFound


def account_view(view):
    """Signed-in users with an account only; passes `account`. A NotFound from a service renders 404."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        account = request.user.account
        if account is None:
            return render(request, "accounts/no_account.html", status=403)
        try:
            return view(request, account, *args, **kwargs)
        except NotFound as exc:
            return render(request, "not_found.html", {"detail": exc.detail}, status=404)

    return wrapper


def render_form(request, template, context):
    """Render a page holding `context["form"]`: 400 when the form shows errors, so a failed submit is visible as one."""
    return render(request, template, context, status=400 if context["form"].errors else 200)
