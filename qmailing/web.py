"""Helpers shared by the dashboard's server-rendered views."""

import secrets
from functools import wraps
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.views.decorators.cache import never_cache
from django.http import HttpResponse
from django.shortcuts import render

from qmailing.errors import NotFound


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
    from accounts.services import account_provision_for_user
    from qmailing.errors import AppError

    try:
        account = account_provision_for_user(user=request.user)
    except AppError:
        return None
    welcome(request, account)
    return account


def welcome(request, account):
    """The message a new account's first page shows: its plan and its first mailbox."""
    from django.contrib import messages

    from mailboxes.selectors import mailbox_list

    mailbox = next(iter(mailbox_list(account=account)), None)
    messages.success(request, f"Welcome! Your account is on the Free plan{f', with the mailbox {mailbox.address}' if mailbox else ''}.")


FAVICON = Path(__file__).resolve().parent / "static" / "qmailing" / "favicon.svg"


def favicon(request):
    """/favicon.ico, which browsers ask for on every site: the product's icon (an SVG, which they all accept)."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


MAX_OPEN_NONCES = 5


def nonce_issue(request, purpose):
    """A one-time value for a form whose answer shows a secret once (a token, a webhook secret): the POST
    that carries it acts once; a browser's re-POST (reload) finds it used and does nothing. The session
    keeps the last MAX_OPEN_NONCES per purpose (several tabs)."""
    key = f"nonces:{purpose}"
    nonce = secrets.token_urlsafe(16)
    request.session[key] = (request.session.get(key, []) + [nonce])[-MAX_OPEN_NONCES:]
    return nonce


def nonce_use(request, purpose, nonce):
    """True once per nonce that nonce_issue handed this session for `purpose`."""
    key = f"nonces:{purpose}"
    open_nonces = request.session.get(key, [])
    if not nonce or nonce not in open_nonces:
        return False
    request.session[key] = [other for other in open_nonces if other != nonce]
    return True


def render_form(request, template, context):
    """Render a page holding `context["form"]`: 400 when the form shows errors, so a failed submit is visible as one."""
    return render(request, template, context, status=400 if context["form"].errors else 200)


NOT_FOUND_DETAIL = "There is no page at this address. Check the link, or start again from the overview."
# Paths that answer in JSON (problem details) or speak a protocol: their 404s are left exactly as they are.
MACHINE_PREFIXES = ("/api/", "/mcp", "/oauth/", "/.well-known/", "/anymail/", "/static/", "/dl/")


class NotFoundPageMiddleware:
    """Serve the product's own not_found.html for every page 404, with DEBUG on as well.

    Django's debug 404 page lists every URL pattern; this one never does. A URL that matched nothing (no
    resolver_match) or a view that raised Http404 gets the product page; 404s a view rendered itself, and
    every machine-facing path (MACHINE_PREFIXES, e.g. /api/'s JSON 404s), pass through untouched. Sits last
    in MIDDLEWARE, so every other middleware sees the replaced response; CommonMiddleware's APPEND_SLASH
    redirect still happens, because a path that would resolve with a slash is left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 404 and request.resolver_match is None and self._is_page(request):
            from django.middleware.common import CommonMiddleware

            if not CommonMiddleware(self.get_response).should_redirect_with_slash(request):
                return self._page(request)
        return response

    def process_exception(self, request, exception):
        from django.http import Http404

        if isinstance(exception, Http404) and self._is_page(request):
            return self._page(request)
        return None

    @staticmethod
    def _is_page(request):
        return not request.path.startswith(MACHINE_PREFIXES)

    @staticmethod
    def _page(request):
        return render(request, "not_found.html", {"detail": NOT_FOUND_DETAIL}, status=404)
