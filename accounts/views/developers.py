"""Settings → Developers: the "Connect to Claude" wizard, the account's tokens, the OAuth apps it authorised
and its API usage.

Wizard steps (STEPS; the page shows where you are):
1-2. pick a client and a use case (GET form on the index page; Claude.ai leaves for its OAuth explanation);
3-4. adjust the scopes the use case proposed and choose the mailboxes, all or some (GET /connect/), then POST;
5. the POST issues the token and renders it in that response only: never stored, never in a session or
   a redirect URL, `Cache-Control: no-store`. A one-time nonce in the step-3 form makes a browser's
   re-POST (reload) issue nothing and show nothing.
"""


from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.connect import (
    CLAUDE_AI, CLIENTS, CUSTOM, USE_CASES, VERIFY_PROMPT, VERIFY_TOOL, server_urls, snippet, verify_command,
)
from accounts.oauth_apps import access_oauth_app, oauth_app_list, oauth_app_revoke
from accounts.request_log import account_usage, usage_breakdown, with_last_used
from accounts.scopes import MAILBOX_READ, SCOPES
from accounts.tokens import (MAX_CLIENT_NAME, TOKEN_LIMIT_REACHED, personal_token_list, token_issue, token_list,
                             token_mailbox_addresses, token_revoke)
from core.errors import AppError, NotFound
from core.forms import add_app_error
from accounts.web import account_view
from core.web import nonce_issue, nonce_use

ALL_MAILBOXES, SOME_MAILBOXES = "all", "some"

# The wizard's steps, each with the one sentence that says what it is for.
STEPS = [
    ("Client", "Pick the app your agent runs in: the token and its config snippet are made for it."),
    ("Use case", "Say what the agent will do; that proposes the smallest set of scopes for it."),
    ("Scopes", "Untick anything this client should not be allowed to do; you can issue another token later."),
    ("Mailboxes", "Let it reach every mailbox, or only the ones you tick: the others stay invisible to it."),
    ("Token", "Copy the token and the snippet into your client now: the token is shown only this once."),
]


class ClientForm(forms.Form):
    client = forms.ChoiceField(choices=list(CLIENTS.items()), widget=forms.RadioSelect, label="Which client?",
                               help_text="Claude.ai signs in with OAuth instead of a token: the next page explains how.")
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
    mailbox_access = forms.ChoiceField(
        choices=[(ALL_MAILBOXES, "All mailboxes"), (SOME_MAILBOXES, "Only the mailboxes ticked below")],
        widget=forms.RadioSelect, required=False, initial=ALL_MAILBOXES, label="Mailboxes",
        help_text="A token for some mailboxes cannot manage domains or webhooks, nor create mailboxes.")
    mailboxes = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple, required=False,
                                          label="Which mailboxes",
                                          help_text="Read only with “Only the mailboxes ticked below”.")

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        # Through the account's relation: accounts imports nothing of the mailboxes app (layers).
        self.fields["mailboxes"].choices = [
            (str(mailbox.pk), mailbox.address)
            for mailbox in account.mailboxes.select_related("domain").order_by("domain__name", "local_part")]

    def clean(self):
        data = super().clean()
        if data.get("mailbox_access") == SOME_MAILBOXES and not data.get("mailboxes"):
            self.add_error("mailboxes", "Tick at least one mailbox, or choose all mailboxes.")
        if data.get("mailbox_access") == ALL_MAILBOXES and data.get("mailboxes"):
            # Never issue a token for every mailbox to someone who ticked some (as the OAuth consent page).
            self.add_error("mailboxes", "You ticked mailboxes but chose all mailboxes: choose “Only the mailboxes "
                                        "ticked below”, or untick them.")
        return data

    def mailbox_ids(self):
        """The chosen mailboxes' ids, or None for all of them."""
        if self.cleaned_data.get("mailbox_access") != SOME_MAILBOXES:
            return None
        return self.cleaned_data["mailboxes"]

    def client_label(self):
        data = self.cleaned_data
        return " ".join((data.get("name") or "").split()) if data["client"] == CUSTOM else CLIENTS[data["client"]]


def _steps(*current):
    """The step indicator: (number, title, sentence, state) with state "done", "current" or "todo"."""
    return [(number, title, sentence,
             "current" if number in current else "done" if number < min(current) else "todo")
            for number, (title, sentence) in enumerate(STEPS, start=1)]


def _index_context(account, client_form=None):
    now = timezone.now()
    tokens = list(with_last_used(personal_token_list(account=account))
                  .prefetch_related("mailbox_limit__mailboxes__domain"))
    for token in tokens:
        token.mailbox_addresses = token_mailbox_addresses(token)
    oauth_apps = oauth_app_list(account=account, now=now)
    return {
        "account": account,
        "usage": account_usage(account=account, now=now),
        "breakdown": usage_breakdown(account=account, now=now),
        "tokens": tokens,
        "oauth_apps": oauth_apps,
        "client_form": client_form or ClientForm(initial={"client": "claude_desktop", "use_case": "triage"}),
        "urls": server_urls(),
        "steps": _steps(1, 2),
        "per_minute": settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE,
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
        _, text = snippet(client=CLAUDE_AI, token=None, urls=urls)
        return render(request, "accounts/connect_claude_ai.html", {
            "snippet": text, "urls": urls, "verify_tool": VERIFY_TOOL, "verify_prompt": VERIFY_PROMPT})
    form = ScopesForm(account=account, initial={
        "client": client_form.cleaned_data["client"], "name": client_form.cleaned_data["name"],
        "scopes": USE_CASES[client_form.cleaned_data["use_case"]][1], "nonce": nonce_issue(request, "developers_connect"),
    })
    return render(request, "accounts/connect_scopes.html",
                  {"form": form, "client_label": client_form.client_label(), "steps": _steps(3, 4),
                   "use_case": USE_CASES[client_form.cleaned_data["use_case"]][0]})


def _issue(request, account):
    form = ScopesForm(request.POST, account=account)
    if form.is_valid() and not nonce_use(request, "developers_connect", form.cleaned_data["nonce"]):
        messages.warning(request, "That form was already used, and its token was shown once. If you did not save "
                                  "it, revoke it below and connect again.")
        return redirect("developers:index")
    if form.is_valid():
        try:
            plaintext, access_token = token_issue(account=account, user=request.user, client=form.client_label(),
                                                  scopes=form.cleaned_data["scopes"], mailbox_ids=form.mailbox_ids())
        except AppError as exc:
            if exc.code == TOKEN_LIMIT_REACHED:
                # The way out is a revoke button, and those are on the token list, not on this form.
                messages.error(request, exc.detail)
                return redirect(reverse("developers:index") + "#tokens")
            add_app_error(form, exc)
        else:
            urls = server_urls()
            where, text = snippet(client=form.cleaned_data["client"], token=plaintext, urls=urls)
            return render(request, "accounts/connect_issued.html", {
                "token": plaintext, "access_token": access_token, "where": where, "snippet": text, "urls": urls,
                "client": form.cleaned_data["client"], "is_custom": form.cleaned_data["client"] == CUSTOM,
                "scopes": access_token.scope.split(), "can_list_mailboxes": MAILBOX_READ in access_token.scope.split(),
                "verify_command": verify_command(token=plaintext, urls=urls), "verify_tool": VERIFY_TOOL,
                "verify_prompt": VERIFY_PROMPT, "steps": _steps(5),
                "mailbox_addresses": token_mailbox_addresses(access_token),
            })
    client_label = form.client_label() if "client" in form.cleaned_data else ""
    data = form.data.copy()
    data["nonce"] = nonce_issue(request, "developers_connect")  # the failed attempt used its nonce (or had none)
    form = ScopesForm(data, account=account)
    form.is_valid()
    return render(request, "accounts/connect_scopes.html",
                  {"form": form, "client_label": client_label, "steps": _steps(3, 4)}, status=400)


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


@account_view
@require_http_methods(["GET", "POST"])
def revoke_oauth_app(request, account, application_id):
    if request.method == "POST":
        revoked = oauth_app_revoke(account=account, application_id=application_id)
        name = revoked["app"].name or "the app"
        messages.success(request, f"Revoked {name}'s access to your account. Its next request is refused; to come back "
                                  "it must ask for your consent again.")
        return redirect("developers:index")
    app = access_oauth_app(account=account, application_id=application_id)
    return render(request, "accounts/revoke_oauth_app.html", {"app": app})

