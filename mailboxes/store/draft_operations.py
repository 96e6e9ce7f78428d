"""Agent-facing draft operations (see agent.operations).

Drafts keep a person in the loop: every tool here but qmailing_send_draft needs only email:write, so an
agent can prepare replies that only a person (or a token with email:send) sends.
"""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, ConfigDict, Field, model_validator

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import EMAIL_SEND, EMAIL_WRITE
from mailboxes.models import Draft
from mailboxes.outbound.send import MAX_BODY_CHARS, MAX_RECIPIENTS, MAX_SUBJECT_CHARS
from mailboxes.selectors import access_mailbox
from mailboxes.store.drafts import (MAX_SCHEDULE_DAYS, access_draft, draft_create, draft_delete, draft_list,
                                    draft_send, draft_update)
from mailboxes.store.operations import (MAX_TEXT_CHARS, AttachmentIn, Attachments, CopyRecipients,
                                        HiddenRecipients, Recipient, SentEmailOut, decoded_attachments)
from core.errors import Invalid
from agent.operations import UNTRUSTED_CONTENT  # noqa: F401 - the docstrings say {UNTRUSTED_CONTENT}
from agent.operations import Input, NextCursor, Output, PageInput, PageOut, With, operation

SUMMARY_SNIPPET_CHARS = 200


class DraftAttachmentInfo(Output):
    index: int = Field(validation_alias=AliasChoices("index", "position"),
                       description="Position among the draft's attachments.")
    filename: str
    content_type: str
    size: int = Field(description="Bytes.")


class DraftSummary(Output):
    id: UUID = Field(description="Use with the other draft tools.")
    mailbox_id: UUID = Field(description="The mailbox it will be sent from.")
    status: Literal[tuple(Draft.Status.values)] = Field(description=(
        "draft: waiting for a person; scheduled: goes out at send_at; failed: a scheduled send failed (see error)."))
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    snippet: str = Field(description="The start of the text.")
    reply_to_email_id: UUID | None = Field(description="The email it answers, if it is a reply.")
    send_at: datetime | None = Field(description="When a scheduled draft goes out.")
    error: str = Field(description="Why the last scheduled send failed; empty otherwise.")
    created_via: str = Field(description="Dashboard, or the client of the token that made it.")
    has_attachments: bool
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _read_draft(cls, draft):
        """What a Draft shows an agent besides its columns: a snippet, its attachments, bodies cut at
        MAX_TEXT_CHARS (the fields DraftOut adds; a summary ignores them)."""
        if isinstance(draft, dict):
            return draft
        attachments = list(draft.attachments.all())
        return With(draft, snippet=" ".join(draft.text.split())[:SUMMARY_SNIPPET_CHARS],
                    has_attachments=bool(attachments), attachments=attachments, text=draft.text[:MAX_TEXT_CHARS],
                    text_truncated=len(draft.text) > MAX_TEXT_CHARS, html=draft.html[:MAX_TEXT_CHARS])


class DraftOut(DraftSummary):
    text: str = Field(description=f"The plain-text body (at most {MAX_TEXT_CHARS} characters shown).")
    text_truncated: bool = Field(description="True when text is longer than what is shown.")
    html: str = Field(description=f"The HTML body, if any (at most {MAX_TEXT_CHARS} characters shown).")
    attachments: list[DraftAttachmentInfo]


class DraftPage(PageOut):
    items: list[DraftSummary]
    next_cursor: NextCursor


class ListDraftsInput(PageInput):
    mailbox_id: UUID | None = Field(None, description="Only this mailbox's drafts; omit for every mailbox.")


@operation("GET", "drafts", scope=EMAIL_WRITE, plan_group=TOOL_GROUP_MAIL,
           example_prompt="Show me the drafts waiting for my review.")
def list_drafts(*, actor, args: ListDraftsInput) -> DraftPage:
    """List drafts

    Use to find drafts waiting for review (status, recipients, subject, schedule), most recently edited first;
    read one whole with qmailing_get_draft. {UNTRUSTED_CONTENT}
    """
    return draft_list(account=actor.account, mailbox=args.mailbox_id, cursor=args.cursor, limit=args.limit,
                      mailbox_ids=actor.mailbox_ids)


class GetDraftInput(Input):
    draft_id: UUID = Field(description="The draft id, from qmailing_list_drafts or qmailing_create_draft.")


@operation("GET", "drafts/{draft_id}", scope=EMAIL_WRITE, plan_group=TOOL_GROUP_MAIL,
           example_prompt="Read me the draft reply to Ada before I send it.")
def get_draft(*, actor, args: GetDraftInput) -> DraftOut:
    """Get a draft

    Use to read one draft whole (recipients, text, HTML, attachments, schedule) before changing or sending it.
    {UNTRUSTED_CONTENT}
    """
    return access_draft(account=actor.account, draft_id=args.draft_id, mailbox_ids=actor.mailbox_ids)


class CreateDraftInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reply_to_email_id": "0b0f6c43-4c1f-4a8e-9d7a-0f3c2b1a9e55", "text": "Thanks, Thursday works for me."}]})

    mailbox_id: UUID = Field(description="The mailbox the draft will be sent from, from qmailing_list_mailboxes.")
    to: list[Recipient] = Field(default_factory=list, max_length=MAX_RECIPIENTS, description=(
        "Recipients: addresses or \"Name <address>\" (may be empty for now; a reply defaults to the sender)."))
    cc: CopyRecipients
    bcc: HiddenRecipients
    subject: str = Field("", max_length=MAX_SUBJECT_CHARS, description="The subject; one line. A reply may omit it (Re: …).")
    text: str = Field("", max_length=MAX_BODY_CHARS, description="The plain-text body.")
    html: str = Field("", max_length=MAX_BODY_CHARS, description="An HTML body, optional.")
    reply_to_email_id: UUID | None = Field(None, description=(
        "Make it a reply to this email of the same mailbox: addressed to its sender and threaded when sent."))
    attachments: Attachments


def _created_via(actor):
    application = getattr(actor.token, "application", None)
    return f"Agent: {application.name}" if application is not None and application.name else "Agent"


@operation("POST", "mailboxes/{mailbox_id}/drafts", scope=EMAIL_WRITE, plan_group=TOOL_GROUP_MAIL, success_status=201,
           example_prompt="Draft a polite reply to Ada's last email accepting Thursday, but don't send it.")
def create_draft(*, actor, args: CreateDraftInput) -> DraftOut:
    """Create a draft

    Use when a person should review what goes out, or this token may not send: prepares a message, or a reply
    (reply_to_email_id), in Drafts. Nothing leaves the account. {UNTRUSTED_CONTENT}
    """
    mailbox = access_mailbox(account=actor.account, mailbox_id=args.mailbox_id, mailbox_ids=actor.mailbox_ids)
    return draft_create(account=actor.account, mailbox=mailbox, to=args.to, cc=args.cc, bcc=args.bcc,
                        subject=args.subject, text=args.text, html=args.html, reply_to_email_id=args.reply_to_email_id,
                        attachments=decoded_attachments(args.attachments), created_via=_created_via(actor))


class UpdateDraftInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "Thanks, Friday works better."}]})

    draft_id: UUID = Field(description="The draft id, from qmailing_list_drafts or qmailing_create_draft.")
    to: list[Recipient] | None = Field(None, max_length=MAX_RECIPIENTS, description="Replace the recipients; omit to keep them.")
    cc: list[Recipient] | None = Field(None, max_length=MAX_RECIPIENTS, description="Replace the copy recipients; omit to keep them.")
    bcc: list[Recipient] | None = Field(None, max_length=MAX_RECIPIENTS, description="Replace the hidden recipients; omit to keep them.")
    subject: str | None = Field(None, max_length=MAX_SUBJECT_CHARS, description="Replace the subject; omit to keep it.")
    text: str | None = Field(None, max_length=MAX_BODY_CHARS, description="Replace the plain-text body; omit to keep it.")
    html: str | None = Field(None, max_length=MAX_BODY_CHARS, description="Replace the HTML body; omit to keep it.")
    attachments: list[AttachmentIn] | None = Field(None, max_length=20, description=(
        "Replace all attachments with these (an empty list removes them); omit to keep them."))


@operation("PATCH", "drafts/{draft_id}", scope=EMAIL_WRITE, plan_group=TOOL_GROUP_MAIL,
           example_prompt="In that draft, change Thursday to Friday.")
def update_draft(*, actor, args: UpdateDraftInput) -> DraftOut:
    """Update a draft

    Use to change a draft: only the fields you send are replaced. Editing a scheduled draft cancels its
    schedule. {UNTRUSTED_CONTENT}
    """
    draft = access_draft(account=actor.account, draft_id=args.draft_id, mailbox_ids=actor.mailbox_ids)
    attachments = None if args.attachments is None else decoded_attachments(args.attachments)
    return draft_update(draft=draft, to=args.to, cc=args.cc, bcc=args.bcc, subject=args.subject, text=args.text,
                        html=args.html, attachments=attachments)


class DeleteDraftInput(Input):
    draft_id: UUID = Field(description="The draft id, from qmailing_list_drafts.")


class DeletedOut(Output):
    id: UUID = Field(description="The id of what was deleted.")
    deleted: bool = Field(description="Always true.")


@operation("DELETE", "drafts/{draft_id}", scope=EMAIL_WRITE, plan_group=TOOL_GROUP_MAIL,
           example_prompt="Throw away the draft to the printer company.")
def delete_draft(*, actor, args: DeleteDraftInput) -> DeletedOut:
    """Delete a draft

    Use only when the user asked to discard a draft: deletes it and its attachments for good (a scheduled one is
    then never sent). {UNTRUSTED_CONTENT}
    """
    draft = access_draft(account=actor.account, draft_id=args.draft_id, mailbox_ids=actor.mailbox_ids)
    draft_delete(draft=draft)
    return DeletedOut(id=draft.id, deleted=True)


class SendDraftInput(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"send_at": "2030-01-06T08:00:00Z"}]})

    draft_id: UUID = Field(description="The draft id, from qmailing_list_drafts.")
    send_at: datetime | None = Field(None, description=(
        f"Send at this time (ISO 8601 with a time zone; within {MAX_SCHEDULE_DAYS} days) instead of now. "
        "It goes out within a minute of that time."))


class SendDraftOut(Output):
    status: Literal["sent", "scheduled"] = Field(description="sent: it went out now; scheduled: it goes out at send_at.")
    email: SentEmailOut | None = Field(description="The copy stored in SENT, when sent now.")
    draft: DraftOut | None = Field(description="The scheduled draft, when scheduled.")


@operation("POST", "drafts/{draft_id}/send", scope=EMAIL_SEND, plan_group=TOOL_GROUP_MAIL, open_world=True,
           example_prompt="Send my draft to Ada tomorrow at 8:00 Berlin time.")
def send_draft(*, actor, args: SendDraftInput) -> SendDraftOut:
    """Send a draft

    Use only when the user asked to send this draft: now, or at send_at. It reaches real people and cannot be
    recalled once sent; a scheduled one can be cancelled until then. {UNTRUSTED_CONTENT}
    """
    draft = access_draft(account=actor.account, draft_id=args.draft_id, mailbox_ids=actor.mailbox_ids)
    if args.send_at is not None and args.send_at.tzinfo is None:
        raise Invalid("send_at needs a time zone (e.g. 2030-01-06T08:00:00Z).", field="send_at")
    result = draft_send(draft=draft, send_at=args.send_at)
    if args.send_at is None:
        return {"status": "sent", "email": result, "draft": None}
    return {"status": "scheduled", "email": None, "draft": result}
