"""The OAuth consent page: DOT's authorization view, with a choice of scopes and of mailboxes.

An MCP client asks for every scope its 401 named, so the person at the page decides what it gets:

- each requested scope is a checkbox, in the words of accounts.scopes; the ones that act in the world
  (accounts.scopes.ACTS_IN_THE_WORLD: sending mail, domains, webhooks) are marked and start unticked;
- presets (accounts.scopes.PRESETS: read only, drafts only, everything) tick boxes in one click. They are
  submit buttons, so they work without JavaScript (the page comes back with those boxes ticked, nothing
  granted); with JavaScript they tick the boxes in place. A preset ticks only scopes the app asked for;
- all mailboxes, or only the ticked ones. "Some" travels to the grant as the oauthlib credential
  `qmailing_mailbox_ids` (the ids, as strings), which the validator keeps on the grant and its tokens;
  "all" sets no credential.

The token carries exactly what was ticked. The requested scopes come back in DOT's hidden `scope` field,
signed with the person, the client and the redirect URI when the page was made: a scope the app did not ask
for cannot be ticked in (the page answers with an error and grants nothing). Allow with nothing ticked is an
error too, not a silent deny: the person pressed Allow, so the page asks again. Deny needs nothing ticked.
"""

from urllib.parse import urlsplit

from django import forms
from django.core import signing
from django.utils.crypto import constant_time_compare
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import get_application_model
from oauth2_provider.views import AuthorizationView

from accounts.scopes import ACTS_IN_THE_WORLD, PRESETS, SCOPES
from agent.oauth_validator import MAILBOX_IDS_CREDENTIAL
from mailboxes.selectors import mailbox_list

ALL_MAILBOXES, SOME_MAILBOXES = "all", "some"
# The oauthlib credential agent.oauth_validator reads: the chosen mailboxes, kept with the grant.
MAILBOX_CREDENTIAL = MAILBOX_IDS_CREDENTIAL
STALE_PAGE = "This page is out of date or was changed. Go back to the app you came from and connect again."


def _signature(*, user, client_id, redirect_uri, scope):
    value = "\n".join(str(part or "") for part in (user.pk, client_id, redirect_uri, " ".join((scope or "").split())))
    return signing.Signer(salt="agent.consent.requested-scopes").signature(value)


def default_ticks(requested):
    """What starts ticked: every requested scope but those that act in the world."""
    return [scope for scope in requested if scope not in ACTS_IN_THE_WORLD]


def preset_ticks(preset, requested):
    """The scopes `preset` ticks among those requested (a preset never adds one the app did not ask for)."""
    chosen = set(PRESETS[preset][1])
    return [scope for scope in requested if scope in chosen]


class ConsentForm(AllowForm):
    """DOT's AllowForm (hidden request fields, `allow`) plus the person's choice of scopes and mailboxes."""

    signature = forms.CharField(required=False, widget=forms.HiddenInput)
    granted = forms.MultipleChoiceField(choices=list(SCOPES.items()), required=False,
                                        widget=forms.CheckboxSelectMultiple, label="Permissions")
    mailboxes = forms.ChoiceField(choices=[(ALL_MAILBOXES, "All mailboxes, also those you add later"),
                                           (SOME_MAILBOXES, "Only the mailboxes ticked below")],
                                  initial=ALL_MAILBOXES, required=False, widget=forms.RadioSelect,
                                  label="Mailboxes")
    mailbox_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Mailboxes it may use",
                                            error_messages={"invalid_choice": "One of the ticked mailboxes is not one "
                                                            "of your account's. Tick mailboxes from the list."})

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        account = getattr(user, "account", None)
        self.account_mailboxes = list(mailbox_list(account=account)) if account is not None else []
        self.fields["mailbox_ids"].choices = [(str(mailbox.pk), mailbox.address) for mailbox in self.account_mailboxes]
        if not self.is_bound:
            initial = self.initial
            initial["signature"] = _signature(user=user, client_id=initial.get("client_id"),
                                              redirect_uri=initial.get("redirect_uri"), scope=initial.get("scope"))
            initial.setdefault("granted", default_ticks(self.requested_scopes()))
            initial.setdefault("mailboxes", ALL_MAILBOXES)

    def _raw(self, name):
        return (self.data.get(name) if self.is_bound else self.initial.get(name)) or ""

    def requested_scopes(self):
        """The scopes the app asked for, in its order (as the page carries them; `clean` checks the signature)."""
        return [scope for scope in dict.fromkeys(self._raw("scope").split()) if scope in SCOPES]

    def requested_untampered(self):
        expected = _signature(user=self.user, client_id=self._raw("client_id"),
                              redirect_uri=self._raw("redirect_uri"), scope=self._raw("scope"))
        return constant_time_compare(expected, self._raw("signature"))

    def ticked(self):
        """The scopes ticked as the page shows them (submitted, or the starting ticks)."""
        value = self["granted"].value() or []
        return set([value] if isinstance(value, str) else value)

    def clean(self):
        data = super().clean()
        if not data.get("allow"):
            return data  # Deny: nothing is granted, so nothing to choose
        if not self.requested_untampered():
            raise forms.ValidationError(STALE_PAGE)
        requested = (data.get("scope") or "").split()
        granted = data.get("granted") or []
        not_requested = [scope for scope in granted if scope not in requested]
        if not_requested:
            self.add_error("granted", f"{', '.join(not_requested)}: this app did not ask for "
                           f"{'it' if len(not_requested) == 1 else 'them'}, so it cannot be granted here.")
        elif not granted:
            self.add_error("granted", "Tick at least one permission, or choose Deny.")
        else:
            data["scope"] = " ".join(scope for scope in requested if scope in granted)  # what DOT grants
        chosen_ids = data.get("mailbox_ids") or []
        if data.get("mailboxes") == SOME_MAILBOXES:
            if not chosen_ids and "mailbox_ids" not in self.errors:  # (a mailbox not the account's is said already)
                self.add_error("mailbox_ids", "Tick at least one mailbox, or choose all mailboxes.")
            data["mailbox_limit"] = list(chosen_ids)
        else:
            if chosen_ids:
                self.add_error("mailboxes", "You ticked mailboxes: choose “Only the mailboxes ticked below” to "
                               "limit the app to them, or untick them.")
            data["mailbox_limit"] = None
        return data


class ConsentView(AuthorizationView):
    """The authorization endpoint: DOT's view with our consent form and page (see the module docstring)."""

    template_name = "oauth/authorize.html"
    form_class = ConsentForm

    def get(self, request, *args, **kwargs):
        # Never approve without the page: DOT's approval_prompt=auto would re-issue on an earlier token's
        # scopes, without the person's choice of mailboxes.
        if request.GET.get("approval_prompt", "force") != "force":
            request.GET = request.GET.copy()
            request.GET["approval_prompt"] = "force"
        return super().get(request, *args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def post(self, request, *args, **kwargs):
        preset = request.POST.get("preset")
        if preset in PRESETS and not request.POST.get("allow"):
            # A preset button without JavaScript: the same page with the preset's boxes ticked; nothing granted.
            form = self.get_form()
            requested = form.requested_scopes() if form.requested_untampered() else []
            data = request.POST.copy()
            data.setlist("granted", preset_ticks(preset, requested))
            del data["preset"]
            form = self.form_class(data=data, user=request.user)
            return self.render_to_response(self.get_context_data(form=form))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        self.mailbox_limit = form.cleaned_data.get("mailbox_limit") if form.cleaned_data.get("allow") else None
        return super().form_valid(form)

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def consent_credentials(self, credentials):
        """The oauthlib credentials of this consent: DOT's, plus the mailbox limit when some were chosen."""
        limit = getattr(self, "mailbox_limit", None)
        if limit is not None:
            credentials = {**credentials, MAILBOX_CREDENTIAL: list(limit)}
        return credentials

    def create_authorization_response(self, request, scopes, credentials, allow):
        return super().create_authorization_response(request, scopes, self.consent_credentials(credentials), allow)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if form is None:
            return context
        requested = form.requested_scopes()
        ticked = form.ticked()
        context["scope_items"] = [
            {"scope": scope, "description": SCOPES[scope], "acts": ACTS_IN_THE_WORLD.get(scope, ""),
             "ticked": scope in ticked, "id": f"scope-{index}"}
            for index, scope in enumerate(requested)]
        context["presets"] = [
            {"key": key, "label": label, "scopes": preset_ticks(key, requested)} for key, (label, _) in PRESETS.items()]
        chosen_ids = set(form["mailbox_ids"].value() or [])
        context["mailbox_items"] = [
            {"id": str(mailbox.pk), "address": mailbox.address, "ticked": str(mailbox.pk) in chosen_ids}
            for mailbox in form.account_mailboxes]
        context["some_mailboxes"] = form["mailboxes"].value() == SOME_MAILBOXES
        if "application" not in context:  # a POST answered with the page again: DOT set none of this
            client_id = form["client_id"].value()
            context["application"] = (get_application_model().objects.filter(client_id=client_id).first()
                                      if client_id else None)
        # Errors the page has no place for: the whole form's, and those of its hidden fields (a request cut short).
        context["page_errors"] = list(form.non_field_errors()) + [
            f"{field.name}: {error}" for field in form.hidden_fields() for error in field.errors]
        redirect_uri = context.get("redirect_uri") or form["redirect_uri"].value() or ""
        context["redirect_host"] = urlsplit(redirect_uri).netloc or "the app"
        return context
