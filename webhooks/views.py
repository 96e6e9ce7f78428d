"""Settings → Webhooks: the account's endpoints, their health and delivery log, and what the owner can do.

Register and rotate show the signing secret in that response only, the way Settings → Developers shows a
token: never stored, never in the session or a redirect URL, `Cache-Control: no-store`; a one-time nonce
in the form makes a browser's re-POST (reload) do nothing and show nothing.

Registering, rotating, enabling and redelivering need a plan with webhooks (PRO and up), the same gate as
the API's; listing, reading the log and revoking stay open, so an account that moved down can still
see and stop what it has.
"""

import json
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import TOOL_GROUP_WEBHOOKS
from accounts.selectors import plan_lowest_with_group
from core.errors import Invalid, PlanRequired
from core.forms import app_error_message
from accounts.web import account_view
from core.web import form_action, nonce_issue, nonce_use, render_form
from webhooks.delivery import deliveries_redeliver, delivery_redeliver, endpoint_enable, webhook_body
from webhooks.models import WEBHOOK_EVENT_TYPES, EventType, WebhookDelivery, WebhookEndpoint
from webhooks.selectors import HEALTH_WINDOW, access_delivery, access_webhook, webhook_deliveries, webhook_health, webhook_list
from webhooks.services import MAX_DESCRIPTION, webhook_register, webhook_revoke, webhook_rotate_secret
from webhooks.ssrf import MAX_URL_LENGTH

LIST_PAGE_SIZE = 50
LOG_PAGE_SIZE = 25
REQUEST_SNIPPET_CHARS = 2000
DEFAULT_OVERLAP_HOURS = 24

ALL_EVENTS = "*"
EVENT_EXPLANATIONS = {
    EventType.EMAIL_RECEIVED: "A message arrived in one of your mailboxes (mail judged spam too, in folder SPAM).",
    EventType.EMAIL_SENT: "A message you sent left QMailing.",
    EventType.EMAIL_DELIVERED: "The recipient's server accepted a message you sent.",
    EventType.EMAIL_BOUNCED: "A message you sent bounced back.",
    EventType.EMAIL_TRASHED: "A message was moved to Trash.",
    EventType.MAILBOX_CREATED: "A mailbox was created in your account.",
    EventType.DOMAIN_VERIFIED: "One of your domains passed DNS verification.",
    EventType.DOMAIN_DNS_CHANGED: "A DNS record of one of your domains changed state (e.g. MX went missing).",
    EventType.WEBHOOK_DISABLED: "One of your webhook endpoints was disabled after failing.",
}
OVERLAP_CHOICES = [(0, "No overlap: the old secret stops at once"), (1, "1 hour"), (24, "24 hours"),
                   (72, "3 days"), (168, "7 days")]
REDELIVER_PERIODS = [("1", "the last hour"), ("6", "the last 6 hours"), ("24", "the last 24 hours"),
                     ("72", "the last 3 days"), ("168", "the last 7 days")]


def _event_choices():
    choices = [(ALL_EVENTS, format_html("<strong>All events</strong> <span class=\"muted\">— {}</span>",
                                        "every type below, and types added later."))]
    for event_type in WEBHOOK_EVENT_TYPES:
        choices.append((str(event_type), format_html("<code>{}</code> <span class=\"muted\">— {}</span>",
                                                     event_type, EVENT_EXPLANATIONS.get(event_type, ""))))
    return choices


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=MAX_URL_LENGTH, label="Endpoint URL", strip=True,
                          widget=forms.TextInput(attrs={"placeholder": "https://hooks.example.com/qmailing",
                                                        "inputmode": "url", "autocomplete": "off"}),
                          help_text="https only, on a public address. Redirects are not followed.")
    description = forms.CharField(max_length=MAX_DESCRIPTION, required=False, label="Description",
                                  help_text="What it is for, e.g. “CRM sync”. Shown in the list.")
    event_types = forms.MultipleChoiceField(choices=_event_choices, widget=forms.CheckboxSelectMultiple,
                                            label="Events to send",
                                            error_messages={"required": "Choose at least one event type."})


class RotateForm(forms.Form):
    overlap_hours = forms.TypedChoiceField(choices=OVERLAP_CHOICES, coerce=int, initial=DEFAULT_OVERLAP_HOURS,
                                           label="Keep the old secret valid for",
                                           help_text="During the overlap every delivery carries both signatures, "
                                                     "so your receiver can switch without missing events.")


class RedeliverFailedForm(forms.Form):
    hours = forms.ChoiceField(choices=REDELIVER_PERIODS, initial="24", label="Failed or cancelled deliveries from")


# --- gates and reads ---------------------------------------------------------------------------------------------

def _plan_gate(account):
    """PlanRequired unless the account's plan has webhooks: the same rule as the API's plan gate."""
    if account.plan.allows_group(TOOL_GROUP_WEBHOOKS):
        return
    required = plan_lowest_with_group(group=TOOL_GROUP_WEBHOOKS)
    name = required.name if required else "a higher"
    raise PlanRequired(f"Webhooks are part of the {name} plan; your account is on the {account.plan.name} plan.",
                       required_plan=required.code if required else None)


def _gated(account, service, /, **arguments):
    """`service` behind the plan gate: an account without webhooks gets PlanRequired before anything runs."""
    _plan_gate(account)
    return service(**arguments)


def _upgrade_message(account):
    try:
        _plan_gate(account)
    except PlanRequired as exc:
        return app_error_message(exc)
    return None


def _request_snippet(event):
    """The body each attempt of this delivery POSTs (rebuilt from the event), indented and bounded."""
    text = json.dumps(json.loads(webhook_body(event)), indent=2, ensure_ascii=False)
    return text if len(text) <= REQUEST_SNIPPET_CHARS else text[:REQUEST_SNIPPET_CHARS] + "\n… (cut)"


# --- pages ------------------------------------------------------------------------------------------------------

@account_view
@require_http_methods(["GET"])
def webhook_index(request, account):
    cursor = request.GET.get("cursor") or None
    try:
        page = webhook_list(account=account, cursor=cursor, limit=LIST_PAGE_SIZE)
    except Invalid as exc:
        messages.error(request, exc.detail)
        return redirect("webhooks:index")
    return render(request, "webhooks/index.html", {
        "account": account, "page": page, "cursor": cursor,
        "rows": [{"endpoint": endpoint, "health": health[endpoint.pk]}
                 for health in [webhook_health(page.items)] for endpoint in page.items],
        "upgrade_message": _upgrade_message(account), "window_days": HEALTH_WINDOW.days,
    })


def _register_page(request, account, form, *, status=None):
    context = {"form": form, "nonce": nonce_issue(request, "webhook_secret"), "upgrade_message": _upgrade_message(account),
               "all_events": ALL_EVENTS}
    if status is None:
        return render_form(request, "webhooks/register.html", context)
    return render(request, "webhooks/register.html", context, status=status)


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def webhook_register_view(request, account):
    if request.method == "GET":
        return _register_page(request, account, WebhookForm(initial={"event_types": [EventType.EMAIL_RECEIVED]}))
    form = WebhookForm(request.POST)
    if form.is_valid():
        if not nonce_use(request, "webhook_secret", request.POST.get("nonce")):
            messages.warning(request, "That form was already used, and its secret was shown once. If you did not "
                                      "save it, rotate the secret on the endpoint's page.")
            return redirect("webhooks:index")
        data = form.cleaned_data
        done = form_action(
            request, lambda: _gated(account, webhook_register, account=account, url=data["url"],
                                    event_types=data["event_types"], description=data["description"]),
            form=form, then=lambda created: render(request, "webhooks/secret.html",
                                                   {"endpoint": created[0], "secret": created[1], "rotated": False}))
        if done is not None:
            return done
    return _register_page(request, account, form)


@account_view
@require_http_methods(["GET"])
def webhook_detail(request, account, webhook_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    cursor = request.GET.get("cursor") or None
    try:
        page = webhook_deliveries(endpoint=endpoint, cursor=cursor, limit=LOG_PAGE_SIZE)
    except Invalid as exc:
        messages.error(request, exc.detail)
        return redirect("webhooks:detail", webhook_id=endpoint.pk)
    deliveries = [{"delivery": delivery, "request": _request_snippet(delivery.event),
                   "attempts": list(delivery.attempt_log.all())} for delivery in page.items]
    return render(request, "webhooks/detail.html", {
        "endpoint": endpoint, "page": page, "deliveries": deliveries, "cursor": cursor,
        "health": webhook_health([endpoint])[endpoint.pk], "window_days": HEALTH_WINDOW.days,
        "redeliver_form": RedeliverFailedForm(), "upgrade_message": _upgrade_message(account),
        "active": endpoint.status == WebhookEndpoint.Status.ACTIVE,
        "disabled": endpoint.status == WebhookEndpoint.Status.DISABLED,
        "revoked": endpoint.status == WebhookEndpoint.Status.REVOKED,
    })


def _back(endpoint):
    return redirect("webhooks:detail", webhook_id=endpoint.pk)


@account_view
@require_POST
def webhook_redeliver(request, account, webhook_id, delivery_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    delivery = access_delivery(endpoint, delivery_id)

    def queued(count):
        if count:
            messages.success(request, f"Queued the {delivery.event.type} delivery again, with the same webhook-id.")
        else:
            messages.info(request, "That delivery is still being attempted; it was not queued twice.")
        return _back(endpoint)

    return form_action(request, lambda: _gated(account, delivery_redeliver, delivery=delivery), then=queued,
                       on_error=_back(endpoint))


@account_view
@require_POST
def webhook_redeliver_failed(request, account, webhook_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    form = RedeliverFailedForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how far back to redeliver.")
        return _back(endpoint)
    since = timezone.now() - timedelta(hours=int(form.cleaned_data["hours"]))
    ids = list(endpoint.deliveries.filter(created_at__gte=since, status__in=[
        WebhookDelivery.Status.FAILED, WebhookDelivery.Status.CANCELLED]).values_list("pk", flat=True))
    period = dict(REDELIVER_PERIODS)[form.cleaned_data["hours"]]

    def queued(count):
        if count:
            messages.success(request, f"Queued {count} deliver{'y' if count == 1 else 'ies'} from {period} again.")
        else:
            messages.info(request, f"No failed or cancelled deliveries from {period}: nothing to redeliver.")
        return _back(endpoint)

    def redeliver():
        _plan_gate(account)
        return deliveries_redeliver(endpoint=endpoint, ids=ids, since=since) if ids else 0

    return form_action(request, redeliver, then=queued, on_error=_back(endpoint))


@account_view
@require_POST
def webhook_enable(request, account, webhook_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    return form_action(request, lambda: _gated(account, endpoint_enable, endpoint=endpoint), then=_back(endpoint),
                       success="Enabled: new events are sent to this endpoint again. Redeliver what it missed below.")


@account_view
@never_cache
@require_http_methods(["GET", "POST"])
def webhook_rotate(request, account, webhook_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    form = RotateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if not nonce_use(request, "webhook_secret", request.POST.get("nonce")):
            messages.warning(request, "That form was already used, and the new secret was shown once. If you did not "
                                      "save it, rotate again.")
            return _back(endpoint)
        overlap_hours = form.cleaned_data["overlap_hours"]
        done = form_action(
            request, lambda: _gated(account, webhook_rotate_secret, endpoint=endpoint, overlap_hours=overlap_hours),
            form=form, then=lambda rotated: render(request, "webhooks/secret.html", {
                "endpoint": rotated[0], "secret": rotated[1], "rotated": True, "overlap_hours": overlap_hours}))
        if done is not None:
            return done
    return render_form(request, "webhooks/rotate.html", {"endpoint": endpoint, "form": form,
                                                          "nonce": nonce_issue(request, "webhook_secret"),
                                                          "upgrade_message": _upgrade_message(account)})


@account_view
@require_http_methods(["GET", "POST"])
def webhook_revoke_view(request, account, webhook_id):
    endpoint = access_webhook(account=account, webhook_id=webhook_id)
    if request.method == "POST":
        if endpoint.status == WebhookEndpoint.Status.REVOKED:
            messages.info(request, f"{endpoint.url} was already revoked.")
        else:
            webhook_revoke(endpoint=endpoint)
            messages.success(request, f"Revoked {endpoint.url}: nothing more is sent to it.")
        return redirect("webhooks:index")
    pending = endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).count()
    return render(request, "webhooks/revoke.html", {"endpoint": endpoint, "pending": pending})
