"""Sending mail: the one service the dashboard, the REST API and the MCP tools call."""

from html import escape

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F
from django.db.models.functions import Greatest
from django.template.defaultfilters import pluralize

from mailboxes.addresses import normalize_address
from mailboxes.inbound.hosted import accounts_lock, deliver_hosted
from mailboxes.inbound.ingest import email_ingest, ingest_batch
from mailboxes.outbound.composition import (MAX_REFERENCES, forward_subject, forwarded_header_lines,
                                            has_control_characters, header_value, new_message_id, reply_subject,
                                            safe_message_id, signed_message)
from mailboxes.models import Email, Folder, Mailbox, SendRecord, Thread
from mailboxes.outbound.delivery import delivery_payload
from mailboxes.outbound.large_sends import large_send_slot
from mailboxes.outbound.ledger import send_reserve, sending_domain
from mailboxes.selectors import mailbox_by_address
from mailboxes.signals import external_recipients
from core.errors import Forbidden, Invalid, NotFound, TooLarge
from events.models import EventType
from events.services import event_publish

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 998
MAX_BODY_CHARS = 2_000_000


def _max_attachment_bytes():
    return settings.QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES


def recipients_clean(values, *, field):
    """[(name, address)] from addresses or "Name <address>" strings; Invalid names the field."""
    if isinstance(values, str):
        values = [values]
    result = []
    for value in values or ():
        value = str(value or "")
        if has_control_characters(value):
            raise Invalid(f"{value!r} contains line breaks or control characters.", field=field)
        name, address = "", value.strip()
        if address.endswith(">") and "<" in address:
            name, address = address[:-1].rsplit("<", 1)
            name = name.strip().strip('"').strip()
        result.append((name, normalize_address(address, field=field)))
    return result


def attachments_clean(items):
    """[(filename, content type, bytes)] checked one by one and against the per-message total."""
    cleaned, total = [], 0
    for index, item in enumerate(items or ()):
        try:
            filename, content_type, content = item
        except (TypeError, ValueError):
            raise Invalid(f"Attachment {index} must be (filename, content type, bytes).", field="attachments")
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise Invalid(f"Attachment {index} content must be bytes.", field="attachments")
        total += len(content)
        cleaned.append((str(filename or ""), str(content_type or ""), bytes(content)))
    cap = _max_attachment_bytes()
    if total > cap:
        raise TooLarge(f"Attachments total {total} bytes; the limit is {cap // (1024 * 1024)} MB per message.",
                       code="attachments_too_large", limit=cap)
    return cleaned


def _reply_headers(*, mailbox, reply_to_email_id):
    try:
        parent = Email.objects.get(pk=reply_to_email_id, mailbox=mailbox)
    except (Email.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No email with this id exists in this mailbox.", field="reply_to_email_id")
    # Only ids that pass the msg-id pattern are used, rebuilt by us: nothing from the inbound header is copied.
    references = [ref for ref in (safe_message_id(r) for r in (parent.references or [])) if ref]
    parent_id = safe_message_id(parent.message_id)
    if parent_id:
        references = [ref for ref in references if ref != parent_id] + [parent_id]
    return parent, parent_id, references[-MAX_REFERENCES:]


def email_send(*, account, mailbox, to, cc=(), bcc=(), subject="", text="", html="", attachments=(),
               reply_to_email_id=None, thread_of=None) -> Email:
    """Send from one of the account's active mailboxes; returns the copy stored in SENT.

    Hosted recipients get their copy now, in this transaction; one that is suspended or out of storage
    is a bounce for that address alone (named in delivery_detail, event email.bounced). The others
    are handed to the mail backend by a task after commit (delivery_status queued → sent / failed,
    then delivered / bounced from the ESP's tracking). The message is DKIM-signed with the mailbox
    domain's key. `thread_of` (an email of the same mailbox) keeps the SENT copy in that email's
    conversation without making it a reply (a forward). A send with large attachments waits for a slot
    (large_sends) and may be refused with RateLimited.
    """
    if not isinstance(mailbox, Mailbox) or mailbox.account_id != account.pk:
        raise NotFound("No mailbox with this id exists in your account.", field="mailbox")
    if not mailbox.is_active:
        raise Forbidden(f"{mailbox.address} is suspended and cannot send mail.", code="mailbox_suspended")
    errors = {}
    lists = {}
    for field, values in (("to", to), ("cc", cc), ("bcc", bcc)):
        try:
            lists[field] = recipients_clean(values, field=field)
        except Invalid as exc:
            errors.setdefault(field, []).append(exc.detail)
    if errors:
        raise Invalid("Some recipients are not valid email addresses.", errors=errors)
    everyone = lists["to"] + lists["cc"] + lists["bcc"]
    if not everyone:
        raise Invalid("Add at least one recipient in to, cc or bcc.", field="to")
    if len(everyone) > MAX_RECIPIENTS:
        raise Invalid(f"At most {MAX_RECIPIENTS} recipients per message (to, cc and bcc together).", field="to")
    if len(subject or "") > MAX_SUBJECT_CHARS:
        raise Invalid(f"The subject can be at most {MAX_SUBJECT_CHARS} characters.", field="subject")
    if len(text or "") > MAX_BODY_CHARS or len(html or "") > MAX_BODY_CHARS:
        raise Invalid(f"The body can be at most {MAX_BODY_CHARS} characters.", field="text")
    files = attachments_clean(attachments)

    in_reply_to, references, parent = "", [], None
    if reply_to_email_id:
        parent, in_reply_to, references = _reply_headers(mailbox=mailbox, reply_to_email_id=reply_to_email_id)
        subject = subject or reply_subject(parent.subject)  # a subject given is sent as given
    domain = sending_domain(account=account, mailbox=mailbox)
    addresses = list(dict.fromkeys(address for _, address in everyone))
    with large_send_slot(attachment_bytes=sum(len(content) for _, _, content in files)):
        return _sign_store_deliver(account=account, mailbox=mailbox, domain=domain, lists=lists, addresses=addresses,
                                   subject=subject, text=text, html=html, files=files, parent=parent or thread_of,
                                   in_reply_to=in_reply_to, references=references)


def _sign_store_deliver(*, account, mailbox, domain, lists, addresses, subject, text, html, files, parent,
                        in_reply_to, references):
    """email_send once its input is checked: the message built and signed once, stored, delivered."""
    message = signed_message(
        domain=domain, sender=(mailbox.display_name, mailbox.address), to=lists["to"], cc=lists["cc"],
        subject=subject, text=text, html=html, attachments=files, message_id=new_message_id(domain_name=domain.name),
        in_reply_to=in_reply_to, references=references,
    )
    signed = message.raw
    hosted = {address: mailbox_by_address(address=address) for address in addresses}
    local = [address for address, found in hosted.items() if found is not None]
    external = [address for address in addresses if address not in local]
    # A batch, not a bare atomic: if anything below fails, the files already written go with the rows.
    with ingest_batch():
        # Sender and hosted recipients locked up front in one order: crosswise sends cannot deadlock,
        # and the sender's lock makes count-then-store one step, so parallel sends cannot overrun the limit.
        accounts_lock(account_ids=[account.pk, *(found.account_id for found in hosted.values() if found)])
        reserved = send_reserve(account=account, kind=SendRecord.Kind.SEND, recipients=addresses)
        copy = email_ingest(mailbox=mailbox, raw=signed, parsed=message.parsed, direction=Email.Direction.OUTBOUND,
                            folder=Folder.SENT, is_read=True, delivery_status=Email.Delivery.QUEUED)
        SendRecord.objects.filter(pk__in=[record.pk for record in reserved]).update(email_id=copy.pk)
        copy.bcc = [{"address": address, "name": header_value(name, limit=320)} for name, address in lists["bcc"]]
        copy.save(update_fields=["bcc"])
        if parent is not None and parent.mailbox_id == mailbox.pk and copy.thread_id != parent.thread_id:
            _join_thread(email=copy, thread_id=parent.thread_id)
        outcome = deliver_hosted(raw=signed, recipients=local, envelope_from=mailbox.address, parsed=message.parsed)
        bounced = [f"{address}: {reason}" for address, reason in outcome.refused.items()]
        if external:
            if bounced:  # shown now; the status turns bounced once the others are handed off
                copy.delivery_detail = "\n".join(bounced)
                copy.save(update_fields=["delivery_detail"])
            external_recipients.send(sender=Email, email=copy, recipients=external, bounced=bool(bounced))
        else:
            _mark_local_outcome(copy, delivered=len(outcome.stored), bounced=bounced)
    return copy


def _join_thread(*, email, thread_id):
    """Keep a reply in its parent's thread even when the parent had no usable Message-ID."""
    old = email.thread_id
    Email.objects.filter(pk=email.pk).update(thread_id=thread_id)
    # The reply is the thread's newest message: it moves the thread to the top of the list.
    Thread.objects.filter(pk=thread_id).update(message_count=F("message_count") + 1,
                                               last_message_at=Greatest(F("last_message_at"), email.received_at))
    Thread.objects.filter(pk=old).update(message_count=F("message_count") - 1)
    Thread.objects.filter(pk=old, message_count__lte=0).delete()
    email.thread_id = thread_id


def _mark_local_outcome(copy, *, delivered, bounced):
    """Every recipient is hosted: delivered for those who got a copy, bounced (worst wins) for the rest."""
    publish = [EventType.EMAIL_SENT]
    lines = []
    if delivered:
        copy.delivery_status = Email.Delivery.DELIVERED
        lines.append(f"Delivered to hosted mailboxes for {delivered} recipient{pluralize(delivered)}.")
        publish.append(EventType.EMAIL_DELIVERED)
    if bounced:
        copy.delivery_status = Email.Delivery.BOUNCED
        lines += bounced
        publish.append(EventType.EMAIL_BOUNCED)
    copy.delivery_detail = "\n".join(lines)
    copy.save(update_fields=["delivery_status", "delivery_detail"])
    payload = delivery_payload(copy)
    for event_type in publish:
        event_publish(account=copy.account, mailbox=copy.mailbox, type=event_type, payload=payload)


MAX_FORWARD_NOTE_CHARS = 100_000


def email_send_forward(*, account, email, to, cc=(), bcc=(), note="", mailbox=None) -> Email:
    """Forward a stored email, with its attachments, to new recipients, with a note on top.

    Sent from `mailbox` (the email's own mailbox by default) through email_send, so every check and
    limit of a send applies; the SENT copy joins the original's conversation. Attachments that would
    take the message past the per-message cap fail the call with attachments_too_large, naming the cap.
    """
    if len(note or "") > MAX_FORWARD_NOTE_CHARS:
        raise Invalid(f"The note can be at most {MAX_FORWARD_NOTE_CHARS} characters.", field="note")
    mailbox = mailbox or email.mailbox
    header = forwarded_header_lines(email)
    text = "\n".join([note.rstrip(), "", *header, "", email.text or ""]) if note.strip() else "\n".join(
        [*header, "", email.text or ""])
    html = ""
    if email.html:
        quoted_note = "".join(f"<p>{escape(paragraph)}</p>" for paragraph in note.split("\n\n") if paragraph.strip())
        html = (f"<div>{quoted_note}</div><div>" + "<br>".join(escape(line) for line in header) +
                f"</div><br><div>{email.html}</div>")  # email.html is the stored, sanitised HTML
    stored = list(email.attachments.all())
    total = sum(attachment.size for attachment in stored)
    cap = _max_attachment_bytes()
    if total > cap:
        raise TooLarge(f"The attachments of this email total {total} bytes; a message may carry "
                       f"{cap // (1024 * 1024)} MB. Forward it without them by sending a new message.",
                       code="attachments_too_large", limit=cap)
    # The slot is taken before the stored attachments are read into memory; email_send then holds it on.
    with large_send_slot(attachment_bytes=total):
        files = []
        for attachment in stored:
            with attachment.file.open("rb") as handle:
                files.append((attachment.filename, attachment.content_type, handle.read()))
        return email_send(account=account, mailbox=mailbox, to=to, cc=cc, bcc=bcc,
                          subject=forward_subject(email.subject), text=text, html=html, attachments=files,
                          thread_of=email)
