"""Helpers every server-rendered page shares: one-time form values, form rendering, and running a service
call for a page (form_action).

Where pages live: an app's pages in `<app>/views.py` (or a `views/` package when it has many), its URL list
in `<app>/urls.py` (included at the root by qmailing/urls.py), its forms in `<app>/forms.py`. A module named
`web.py` holds what pages share: this one, accounts.web's account_view, qmailing.web's page chrome.
"""

import secrets

from django.contrib import messages
from django.http import HttpResponseBase
from django.shortcuts import redirect, render

from core.errors import AppError
from core.forms import add_app_error, app_error_message

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


def form_action(request, call, *, then, success=None, form=None, on_error=None, explain=None):
    """Run one service call for a page and answer the way every page does.

    - The call succeeds: `success` becomes a success message and the browser goes to `then`.
    - It raises an AppError: with a `form`, the error lands on the form (field errors beside their fields)
      and the answer is None, so the view renders the form again (render_form: 400); without a form, the
      error's words become an error message and the browser goes to `on_error` (`then` when not given).

    `success` is a sentence, or a function of the call's result returning one (or None for no message).
    `then` and `on_error` are a URL, a URL name or a response; `then` may also be a function of the result
    returning one of those (a page that shows a secret once, a redirect to what was just made). `explain`
    rewrites the error before it is shown (say, a domain's name as the person typed it).
    """
    try:
        result = call()
    except AppError as exc:
        exc = explain(exc) if explain else exc
        if form is not None:
            add_app_error(form, exc)
            return None
        messages.error(request, app_error_message(exc))
        return _answer(then if on_error is None else on_error)
    text = success(result) if callable(success) else success
    if text:
        messages.success(request, text)
    return _answer(then(result) if callable(then) else then)


def _answer(target):
    return target if isinstance(target, HttpResponseBase) else redirect(target)
