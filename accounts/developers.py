"""Settings → Developers: the "Connect to Claude" wizard, the account's tokens and its API usage.

1. pick a client and a use case (GET form on the index page);
2. adjust the scopes the use case proposed (GET /connect/), then POST;
3. the POST issues the token and renders it in that response only: never stored, never in a session or
   a redirect URL, `Cache-Control: no-store`. A one-time nonce in the step-2 form makes a browser's
   re-POST (reload) issue nothing and show nothing.
"""

import secrets

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.connect import CLAUDE_AI, CLIENTS, CUSTOM, USE_CASES, server_urls, snippet
from accounts.request_log import account_usage, with_last_used
from accounts.scopes import SCOPES
from accounts.tokens import MAX_CLIENT_NAME, token_issue, token_list, token_revoke
from qmailing.errors import AppError, NotFound
from qmailing.forms import add_app_error
from qmailing.web import account_view

NONCES_KEY = "developers_connect_nonces"
MAX_OPEN_NONCES = 5


class ClientForm(forms.Form):
    client = forms.ChoiceField(choices=list(CLIENTS.items()), widget=forms.RadioSelect, label="Which client?")
    name = forms.CharField(required=False, max_length=MAX_CLIENT_NAME, label="Custom client's name",
                           help_text="Only for a custom client, e.g. “n8n inbox bot”.")
    use_case = forms.ChoiceField(choices=[(key, label) for key, (label, _) in USE_CASES.items()],
                                 widget=forms.RadioSelect, initial="triage", label="What will it do?",
                                 help_text="Proposes scopes; you adjust them on the next step.")

    def clean(self):
        data = super().clean()
        if data.get("client") == CUSTOM and not " ".join((data.get("name") or "").split()):
            self.add_error("name", "Name your custom client, so you can tell its token apart later.")
        return data

    def client_label(self):
        data = self.cleaned_data
        return " ".join(data["name"].split()) if data["client"] == CUSTOM else CLIENTS[data["client"]]


class ScopesForm(forms.Form):
    client = forms.ChoiceField(choices=[(key, label) for key, label in CLIENTS.items() if key != CLAUDE_AI],
                               widget=forms.HiddenInput)
    name = forms.CharField(required=False, max_length=MAX_CLIENT_NAME, widget=forms.HiddenInput)
    nonce = forms.CharField(max_length=64, widget=forms.HiddenInput)
    scopes = forms.MultipleChoiceField(choices=list(SCOPES.items()), widget=forms.CheckboxSelectMultiple,
                                       label="Scopes", error_messages={"required": "Choose at least one scope."})

    def client_label(self):
        data = self.cleaned_data
        return " ".join((data.get("name") or "").split()) if data["client"] == CUSTOM else CLIENTS[data["client"]]


def _new_nonce(request):
    nonce = secrets.token_urlsafe(16)
    request.session[NONCES_KEY] = (request.session.get(NONCES_KEY, []) + [nonce])[-MAX_OPEN_NONCES:]
    return nonce


def _use_nonce(request, nonce):
    """True once per nonce the session handed out."""
    open_nonces = request.session.get(NONCES_KEY, [])
    if nonce not in open_nonces:
        return False
    request.session[NONCES_KEY] = [other for other in open_nonces if other != nonce]
    return True


def _index_context(account, client_form=None):
    return {
        "account": account,
        "usage": account_usage(account=account),
        "tokens": with_last_used(token_list(account=account)),
        "client_form": client_form or ClientForm(initial={"client": "claude_desktop", "use_case": "triage"}),
        "urls": server_urls(),
    }


@account_view
@require_http_methods(["GET"])
def developers(request, account):
    return render(request, "accounts/developers.html", _index_context(account))


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def connect(request, account):
    if request.method == "POST":
        return _issue(request, account)
    client_form = ClientForm(request.GET)
    if not client_form.is_valid():
        return render(request, "accounts/developers.html", _index_context(account, client_form), status=400)
    urls = server_urls()
    if client_form.cleaned_data["client"] == CLAUDE_AI:
        where, text = snippet(client=CLAUDE_AI, token=None, urls=urls)
        return render(request, "accounts/connect_claude_ai.html", {"where": where, "snippet": text, "urls": urls})
    form = ScopesForm(initial={
        "client": client_form.cleaned_data["client"], "name": client_form.cleaned_data["name"],
        "scopes": USE_CASES[client_form.cleaned_data["use_case"]][1], "nonce": _new_nonce(request),
    })
    return render(request, "accounts/connect_scopes.html",
                  {"form": form, "client_label": client_form.client_label(),
                   "use_case": USE_CASES[client_form.cleaned_data["use_case"]][0]})


def _issue(request, account):
    form = ScopesForm(request.POST)
    if form.is_valid() and not _use_nonce(request, form.cleaned_data["nonce"]):
        messages.warning(request, "That form was already used, and its token was shown once. If you did not save "
                                  "it, revoke it below and connect again.")
        return redirect("developers:index")
    if form.is_valid():
        try:
            plaintext, access_token = token_issue(account=account, user=request.user, client=form.client_label(),
                                                  scopes=form.cleaned_data["scopes"])
        except AppError as exc:
            add_app_error(form, exc)
        else:
            urls = server_urls()
            where, text = snippet(client=form.cleaned_data["client"], token=plaintext, urls=urls)
            return render(request, "accounts/connect_issued.html", {
                "token": plaintext, "access_token": access_token, "where": where, "snippet": text, "urls": urls,
                "client": form.cleaned_data["client"],
            })
    client_label = form.client_label() if "client" in form.cleaned_data else ""
    data = form.data.copy()
    data["nonce"] = _new_nonce(request)  # the failed attempt used its nonce (or had none)
    form = ScopesForm(data)
    form.is_valid()
    return render(request, "accounts/connect_scopes.html", {"form": form, "client_label": client_label}, status=400)


@account_view
@require_http_methods(["GET", "POST"])
def revoke(request, account, token_id):
    token = with_last_used(token_list(account=account)).filter(pk=token_id).first()
    if token is None:
        raise NotFound("No token with this id exists in your account.")
    if request.method == "POST":
        token_revoke(account=account, token_id=token_id)
        messages.success(request, f"Revoked the token for {token.application.name if token.application else 'a client'}. "
                                  "Its next request is refused.")
        return redirect("developers:index")
    return render(request, "accounts/revoke_token.html", {"token": token})


developer_urls = ([
    path("", developers, name="index"),
    path("connect/", connect, name="connect"),
    path("tokens/<int:token_id>/revoke/", revoke, name="revoke"),
], "developers")
