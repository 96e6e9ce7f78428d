"""The dashboard's pages of an account: who may open them, and the first page of a new account."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.services import account_provision_for_user
from core.errors import AppError, NotFound


def account_view(view):
    """Signed-in users with an account only; passes `account`. A NotFound from a service renders 404.
    Pages hold the account's mail and settings: never cached (no back button into them after sign-out)."""

    @never_cache
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        account = request.user.account
        if account is None:
            account = _provision(request)
            if account is None:
                return render(request, "accounts/no_account.html", status=403)
        try:
            return view(request, account, *args, **kwargs)
        except NotFound as exc:
            return render(request, "not_found.html", {"detail": exc.detail}, status=404)

    return wrapper


def _provision(request):
    """A signed-in user without an account (say, made with `createsuperuser`) gets one on the first page they open."""
    try:
        account = account_provision_for_user(user=request.user)
    except AppError:
        return None
    welcome(request, account)
    return account


def welcome(request, account):
    """The message a new account's first page shows: its plan and its first mailbox."""
    mailbox = account.mailboxes.order_by("domain__name", "local_part").first()
    messages.success(request, f"Welcome! Your account is on the Free plan{f', with the mailbox {mailbox.address}' if mailbox else ''}.")
