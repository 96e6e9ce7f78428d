"""Drafts: messages prepared but not sent, so that a person stays in the loop.

An agent whose token has email:write but not email:send can prepare a reply here; only a person (or
a token with email:send) sends it. Sending goes through outbound.send.email_send, now or at a
scheduled time (`send_at`): the scheduler's `drafts_send_due` sends what is due, once, and deletes the
draft; a draft that fails then stays, marked failed with the reason, for a person to look at.
"""

import logging
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from mailboxes.models import Draft, DraftAttachment, Email
from mailboxes.outbound.composition import has_control_characters, reply_recipients, reply_subject
from mailboxes.outbound.send import (MAX_BODY_CHARS, MAX_RECIPIENTS, MAX_SUBJECT_CHARS, attachments_clean,
                                     email_send, recipients_clean)
from mailboxes.selectors import own_mailbox
from mailboxes.store.services import delete_stored_files
from core.errors import AppError, Conflict, Forbidden, Invalid, NotFound
from core.pagination import Page, keyset_page
from core.tenancy import within_mailboxes

logger = logging.getLogger(__name__)

MAX_SCHEDULE_DAYS = 365
SEND_DUE_BATCH = 100


def _max_drafts():
    return settings.QMAILING_MAX_DRAFTS_PER_ACCOUNT


# --- selectors ------------------------------------------------------------------------------------------------

def draft_list(*, account, mailbox=None, cursor=None, limit=50, mailbox_ids=None) -> Page:
    """The account's drafts (or one mailbox's; only those of `mailbox_ids`, when given), most recently edited first."""
    drafts = within_mailboxes(Draft.objects.filter(account=account), mailbox_ids)
    if mailbox is not None:
        drafts = drafts.filter(mailbox=own_mailbox(account=account, mailbox=mailbox, mailbox_ids=mailbox_ids))
    return keyset_page(drafts.select_related("mailbox__domain").prefetch_related("attachments"),
                       cursor=cursor, limit=limit, time_field="updated_at")


def draft_count(*, account, mailbox=None) -> int:
    drafts = Draft.objects.filter(account=account)
    if mailbox is not None:
        drafts = drafts.filter(mailbox=own_mailbox(account=account, mailbox=mailbox))
    return drafts.count()


def access_draft(*, account, draft_id, mailbox_ids=None) -> Draft:
    """The account's draft, or NotFound (the same for missing, foreign and outside `mailbox_ids`)."""
    try:
        return (within_mailboxes(Draft.objects.select_related("mailbox__domain"), mailbox_ids)
                .prefetch_related("attachments")
                .get(pk=draft_id, account=account))
    except (Draft.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No draft with this id exists in your account.")


# --- services -------------------------------------------------------------------------------------------------

def _addresses(values, *, field):
    """The recipients as given ("Name <address>" kept), each checked now so a bad one is named at once."""
    values = [values] if isinstance(values, str) else list(values or ())
    recipients_clean(values, field=field)
    return [" ".join(str(value).split()) for value in values]


def _reply_parent(*, mailbox, reply_to_email_id):
    try:
        return Email.objects.get(pk=reply_to_email_id, mailbox=mailbox)
    except (Email.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No email with this id exists in this mailbox.", field="reply_to_email_id")


def _check_content(*, to, cc, bcc, subject, text, html):
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise Invalid(f"At most {MAX_RECIPIENTS} recipients per message (to, cc and bcc together).", field="to")
    if len(subject) > MAX_SUBJECT_CHARS or has_control_characters(subject):
        raise Invalid(f"The subject is one line of at most {MAX_SUBJECT_CHARS} characters.", field="subject")
    if len(text) > MAX_BODY_CHARS or len(html) > MAX_BODY_CHARS:
        raise Invalid(f"The body can be at most {MAX_BODY_CHARS} characters.", field="text")


def _store_attachments(draft, attachments, written):
    """Replace the draft's files with `attachments` [(filename, content type, bytes)]; old files go on commit.

    New files are listed in `written`, for the caller to delete if its transaction rolls back.
    """
    files = attachments_clean(attachments)
    old = [(a.file.storage, a.file.name) for a in draft.attachments.all() if a.file]
    draft.attachments.all().delete()
    for position, (filename, content_type, content) in enumerate(files):
        item = DraftAttachment(draft=draft, position=position, filename=filename[:255] or f"attachment-{position}",
                               content_type=content_type or "application/octet-stream", size=len(content))
        item.file.save("file", ContentFile(content), save=False)
        written.append((item.file.storage, item.file.name))
        item.save()
    transaction.on_commit(lambda: delete_stored_files(old))


@contextmanager
def _files_rolled_back():
    """A transaction whose newly written files are deleted when it rolls back."""
    written = []
    try:
        with transaction.atomic():
            yield written
    except BaseException:
        delete_stored_files(written)
        raise


def draft_create(*, account, mailbox, to=(), cc=(), bcc=(), subject="", text="", html="", reply_to_email_id=None,
                 attachments=(), created_via="") -> Draft:
    """Save a new draft in one of the account's mailboxes.

    A reply draft (reply_to_email_id, an email of the same mailbox) is addressed to its sender and takes
    its subject when those are left empty; threading headers are set when it is sent. Recipients are
    checked now; a draft may have none yet.
    """
    mailbox = own_mailbox(account=account, mailbox=mailbox)
    to, cc, bcc = (_addresses(to, field="to"), _addresses(cc, field="cc"), _addresses(bcc, field="bcc"))
    subject, text, html = str(subject or ""), str(text or ""), str(html or "")
    parent = None
    if reply_to_email_id:
        parent = _reply_parent(mailbox=mailbox, reply_to_email_id=reply_to_email_id)
        if not (to or cc or bcc):
            to = reply_recipients(parent)
        subject = subject or reply_subject(parent.subject)
    _check_content(to=to, cc=cc, bcc=bcc, subject=subject, text=text, html=html)
    with _files_rolled_back() as written:
        if Draft.objects.filter(account=account).count() >= _max_drafts():
            raise Conflict(f"An account keeps at most {_max_drafts()} drafts. Send or delete some first.",
                           code="draft_limit_reached")
        draft = Draft.objects.create(account=account, mailbox=mailbox, to=to, cc=cc, bcc=bcc, subject=subject,
                                     text=text, html=html, reply_to_email=parent, created_via=created_via[:120])
        if attachments:
            _store_attachments(draft, attachments, written)
    return access_draft(account=account, draft_id=draft.pk)


def draft_update(*, draft, to=None, cc=None, bcc=None, subject=None, text=None, html=None, attachments=None) -> Draft:
    """Change what is given (None leaves a field as it is; attachments, when given, replace the files).

    Editing a scheduled or failed draft makes it a plain draft again: it is not sent until sent anew.
    """
    with _files_rolled_back() as written:
        current = Draft.objects.select_for_update().get(pk=draft.pk)
        if to is not None:
            current.to = _addresses(to, field="to")
        if cc is not None:
            current.cc = _addresses(cc, field="cc")
        if bcc is not None:
            current.bcc = _addresses(bcc, field="bcc")
        for name, value in (("subject", subject), ("text", text), ("html", html)):
            if value is not None:
                setattr(current, name, str(value))
        _check_content(to=current.to, cc=current.cc, bcc=current.bcc, subject=current.subject, text=current.text,
                       html=current.html)
        current.status, current.send_at, current.error = Draft.Status.DRAFT, None, ""
        current.updated_at = timezone.now()
        current.save()
        if attachments is not None:
            _store_attachments(current, attachments, written)
    return access_draft(account=current.account_id, draft_id=current.pk)


def draft_delete(*, draft) -> None:
    """Delete a draft and its files; deleting one that is already gone is not an error."""
    with transaction.atomic():
        files = [(a.file.storage, a.file.name) for a in DraftAttachment.objects.filter(draft_id=draft.pk) if a.file]
        Draft.objects.filter(pk=draft.pk).delete()
        transaction.on_commit(lambda: delete_stored_files(files))


def _send_now(draft) -> Email:
    """Send a locked draft through email_send and delete it, in one transaction."""
    files = []
    for attachment in draft.attachments.all():
        with attachment.file.open("rb") as handle:
            files.append((attachment.filename, attachment.content_type, handle.read()))
    copy = email_send(account=draft.account, mailbox=draft.mailbox, to=draft.to, cc=draft.cc, bcc=draft.bcc,
                      subject=draft.subject, text=draft.text, html=draft.html, attachments=files,
                      reply_to_email_id=draft.reply_to_email_id)
    draft_delete(draft=draft)
    return copy


def draft_send(*, draft, send_at=None):
    """Send a draft now (returns the Email stored in SENT) or schedule it for `send_at` (returns the Draft).

    Everything a send checks is checked now as well (recipients, mailbox, limits when sending now), so
    a draft that cannot go out is refused here rather than failing later.
    """
    with transaction.atomic():
        try:
            current = (Draft.objects.select_for_update().select_related("account__plan", "mailbox__domain")
                       .get(pk=draft.pk))
        except Draft.DoesNotExist:
            raise NotFound("No draft with this id exists in your account.")
        everyone = (recipients_clean(current.to, field="to") + recipients_clean(current.cc, field="cc")
                    + recipients_clean(current.bcc, field="bcc"))
        if not everyone:
            raise Conflict("The draft has no recipient yet. Add one (to, cc or bcc) with an update, then send it.",
                           code="draft_incomplete")
        if send_at is None:
            return _send_now(current)
        now = timezone.now()
        if send_at <= now:
            raise Invalid("send_at is in the past; leave it out to send now.", field="send_at")
        if send_at > now + timedelta(days=MAX_SCHEDULE_DAYS):
            raise Invalid(f"send_at can be at most {MAX_SCHEDULE_DAYS} days ahead.", field="send_at")
        if not current.mailbox.is_active:
            raise Forbidden(f"{current.mailbox.address} is suspended and cannot send mail.", code="mailbox_suspended")
        current.status, current.send_at, current.error = Draft.Status.SCHEDULED, send_at, ""
        current.updated_at = now
        current.save(update_fields=["status", "send_at", "error", "updated_at"])
    return access_draft(account=current.account, draft_id=current.pk)


def drafts_send_due(*, now=None, batch=SEND_DUE_BATCH) -> int:
    """Send every scheduled draft whose time has come (the scheduler runs this each minute); returns how many went.

    Each draft is locked and checked again before it goes, so two runs at once send it once. One that
    cannot be sent is marked failed with the reason and stays for a person to fix.
    """
    now = now or timezone.now()
    sent = 0
    due = list(Draft.objects.filter(status=Draft.Status.SCHEDULED, send_at__lte=now)
               .order_by("send_at").values_list("pk", flat=True)[:batch])
    for draft_id in due:
        try:
            with transaction.atomic():
                current = (Draft.objects.select_for_update().select_related("account__plan", "mailbox__domain")
                           .filter(pk=draft_id, status=Draft.Status.SCHEDULED, send_at__lte=now).first())
                if current is None:
                    continue
                _send_now(current)
                sent += 1
        except AppError as error:
            Draft.objects.filter(pk=draft_id, status=Draft.Status.SCHEDULED).update(
                status=Draft.Status.FAILED, error=error.detail[:2000], updated_at=timezone.now())
        except Exception:
            logger.exception("Scheduled draft %s could not be sent; it is tried again next minute", draft_id)
    return sent
