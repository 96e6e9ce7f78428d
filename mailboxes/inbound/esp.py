"""Inbound mail through an ESP: django-anymail's `inbound` signal feeds the same path as SMTP.

Mailgun route: forward("https://<host>/anymail/mailgun/inbound_mime/") — a URL ending in "mime" makes
Mailgun post the untouched message as `body-mime`. anymail checks the webhook signature (and basic
auth when WEBHOOK_SECRET is set) before this receiver runs.
"""

import logging

from anymail.webhooks.mailgun import MailgunInboundWebhookView
from django.http import HttpResponse

from mailboxes.inbound.authentication import authentication_stamp, message_authenticate, top_received_client
from mailboxes.inbound.hosted import NOT_HOSTED, TOO_COMPLEX, deliver_hosted

logger = logging.getLogger(__name__)


def inbound_raw_bytes(event):
    """The message as the ESP received it: Mailgun's body-mime when posted, else anymail's rebuilt message."""
    request = event.esp_event
    post = getattr(request, "POST", None)
    if post is not None and "body-mime" in post:
        return post["body-mime"].encode("utf-8")
    return event.message.as_bytes()


def inbound_recipients(event):
    """Envelope recipients when the ESP gives them, else the To and Cc addresses."""
    message = event.message
    envelope = getattr(message, "envelope_recipient", None) or ""
    recipients = [address.strip() for address in envelope.split(",") if address.strip()]
    if not recipients:
        recipients = [address.addr_spec for address in (*message.to, *message.cc)]
    return recipients


def on_inbound(sender, event, esp_name, **kwargs):
    """anymail `inbound` signal receiver: store one copy per hosted recipient mailbox.

    Transient errors propagate, so anymail answers 500 and the ESP retries later; a full mailbox is
    final per address (as SMTP's 552), so it is logged and acknowledged instead of retried for hours.
    """
    raw = inbound_raw_bytes(event)
    recipients = inbound_recipients(event)
    envelope_from = getattr(event.message, "envelope_sender", None) or ""
    # The post is signed, so its topmost Received line is Mailgun's: the server that handed it the message.
    client_ip, helo = top_received_client(raw)
    authentication = message_authenticate(raw=raw, client_ip=client_ip, helo=helo, mail_from=envelope_from)
    raw = authentication_stamp(raw=raw, authentication=authentication)
    outcome = deliver_hosted(raw=raw, recipients=recipients, envelope_from=envelope_from, refuse_over_caps=True,
                             authentication=authentication)
    if not outcome.stored and TOO_COMPLEX in outcome.refused.values():
        raise MessageRefused(TOO_COMPLEX)
    # Cc'd addresses elsewhere are in the list too: only hosted ones that were refused are news.
    refused = {address: reason for address, reason in outcome.refused.items() if reason != NOT_HOSTED}
    if refused:
        logger.warning("%s inbound refused for %s", esp_name,
                       ", ".join(f"{address} ({reason})" for address, reason in refused.items()))
    if not outcome.stored:
        logger.info("%s inbound for %s was stored in no hosted mailbox", esp_name, recipients)


class MessageRefused(Exception):
    """A message no hosted recipient will take, for a reason retrying cannot change."""


class MailgunInboundView(MailgunInboundWebhookView):
    """anymail's Mailgun inbound view; a refused message answers 406, which Mailgun takes as final (no retries)."""

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except MessageRefused as exc:
            return HttpResponse(str(exc), status=406, content_type="text/plain; charset=utf-8")
