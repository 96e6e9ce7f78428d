"""Helpers every server-rendered page shares: one-time form values and form rendering."""

import secrets

from django.shortcuts import render

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
