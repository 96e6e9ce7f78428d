"""Agent-facing mail operations (see qmailing.operations); registered through mailboxes/operations.py.

Objects are made for models: list items are summaries, and get_email caps its text by default (a
newsletter must not flood a context window), says so with `truncated`, and tells how to read on.
"""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from accounts.models import TOOL_GROUP_MAIL
from accounts.scopes import EMAIL_READ
from mailboxes.models import Extraction, Folder
from mailboxes.store.folders import FOLDER_VIEWS
from mailboxes.store.selectors import email_get, email_list
from qmailing.operations import READ_ONLY, UNTRUSTED_CONTENT, Input, Operation, PageInput, register
DEFAULT_TEXT_CHARS = 8_000  # what get_email returns of `text` and `text_clean` unless asked for more
MAX_TEXT_CHARS = 100_000  # the most one call returns of either
MAX_HTML_CHARS = 200_000  # sanitised HTML, only when asked


class Address(BaseModel):
    address: str
    name: str = ""


class EmailSummary(BaseModel):
    id: UUID = Field(description="Use with qmailing_get_email.")
    thread_id: UUID
    mailbox_id: UUID
    folder: Literal[tuple(Folder.values)]
    direction: Literal["inbound", "outbound"]
    is_read: bool
    is_starred: bool
    from_: Address = Field(alias="from", description="The sender as the message states it (see authentication).")
    subject: str
    date: datetime | None = Field(description="The Date header, when it parsed.")
    received_at: datetime
    snippet: str = Field(description="The start of the text.")
    has_attachments: bool
    authentication_verdict: str = Field(description=("pass: DMARC (or aligned SPF/DKIM) vouches for the sender; fail: "
                                                     "the From is likely forged; none/temperror/permerror/empty: unverified."))

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @classmethod
    def of(cls, email):
        return cls(id=email.id, thread_id=email.thread_id, mailbox_id=email.mailbox_id, folder=email.folder,
                   direction=email.direction, is_read=email.is_read, is_starred=email.is_starred,
                   from_=Address(address=email.from_address, name=email.from_name), subject=email.subject,
                   date=email.date, received_at=email.received_at, snippet=email.snippet,
                   has_attachments=email.has_attachments,
                   authentication_verdict=(email.authentication or {}).get("verdict", ""))


class EmailPage(BaseModel):
    items: list[EmailSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class ListEmailsInput(PageInput):
    mailbox_id: UUID = Field(description="The mailbox id, from qmailing_list_mailboxes.")
    folder: Literal[FOLDER_VIEWS] = Field(Folder.INBOX.value, description="A folder, or STARRED for starred mail outside Trash and Spam.")


def _list_emails(*, actor, args):
    page = email_list(account=actor.account, mailbox=args.mailbox_id, folder=args.folder, cursor=args.cursor,
                      limit=args.limit)
    return EmailPage(items=[EmailSummary.of(e) for e in page.items], next_cursor=page.next_cursor)


register(Operation(
    name="qmailing_list_emails",
    title="List emails",
    description=("List the emails in one folder of a mailbox (INBOX by default, or SENT, DRAFTS, ARCHIVE, SPAM, "
                 "TRASH, STARRED), newest first, one page at a time: sender, subject, date, snippet, flags and "
                 "whether attachments are present. Use qmailing_get_email for the body. " + UNTRUSTED_CONTENT),
    input=ListEmailsInput, output=EmailPage, scope=EMAIL_READ, plan_group=TOOL_GROUP_MAIL, annotations=READ_ONLY,
    method="GET", path="mailboxes/{mailbox_id}/emails", handler=_list_emails,
))


class AttachmentInfo(BaseModel):
    index: int = Field(description="Position among the email's attachments (for qmailing_get_attachment).")
    filename: str
    content_type: str
    size: int = Field(description="Bytes.")
    is_inline: bool
    text_extracted: bool = Field(description="Whether text was extracted from it (text and PDF attachments).")


class EmailOut(EmailSummary):
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    message_id: str
    in_reply_to: str
    text: str = Field(description="The plain-text body (HTML turned into text), from text_offset, at most max_chars.")
    text_offset: int
    text_length: int = Field(description="Characters in the whole text.")
    truncated: bool = Field(description="True when text stops before its end; call again with offset=next_offset.")
    next_offset: int | None
    text_clean: str = Field(description="What the sender wrote, without quoted history and signature (at most max_chars).")
    text_clean_truncated: bool
    html: str | None = Field(description="The sanitised HTML, only when include_html was true.")
    links: dict[str, str] | None = Field(description="Link number → URL, only when include_links was true.")
    attachments: list[AttachmentInfo]
    authentication: dict = Field(description="SPF, DKIM, DMARC (and ARC) results checked on arrival; {} when not checked.")


class GetEmailInput(Input):
    email_id: UUID = Field(description="The email id, from qmailing_list_emails.")
    max_chars: int = Field(DEFAULT_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS,
                           description=f"Most characters of text (and of text_clean) to return, up to {MAX_TEXT_CHARS}.")
    offset: int = Field(0, ge=0, le=100_000_000, description="Character offset into text, to read on from next_offset.")
    include_html: bool = Field(False, description=f"Also return the sanitised HTML (at most {MAX_HTML_CHARS} characters).")
    include_links: bool = Field(False, description="Also return the numbered links of the text.")


def _get_email(*, actor, args):
    email = email_get(account=actor.account, email_id=args.email_id)
    summary = EmailSummary.of(email).model_dump()
    text = email.text or ""
    end = args.offset + args.max_chars
    clean = email.text_clean or ""
    return EmailOut(
        **summary, to=email.to or [], cc=email.cc or [], reply_to=email.reply_to or [], message_id=email.message_id,
        in_reply_to=email.in_reply_to, text=text[args.offset:end], text_offset=args.offset, text_length=len(text),
        truncated=end < len(text), next_offset=end if end < len(text) else None,
        text_clean=clean[:args.max_chars], text_clean_truncated=len(clean) > args.max_chars,
        html=(email.html or "")[:MAX_HTML_CHARS] if args.include_html else None,
        links={str(k): str(v) for k, v in (email.links or {}).items()} if args.include_links else None,
        attachments=[AttachmentInfo(index=a.position, filename=a.filename, content_type=a.content_type, size=a.size,
                                    is_inline=a.is_inline, text_extracted=a.extraction == Extraction.DONE)
                     for a in email.attachments.all()],
        authentication=email.authentication or {},
    )


register(Operation(
    name="qmailing_get_email",
    title="Get an email",
    description=("Read one email: headers (from, to, cc, date, subject, message id), its text, the text without "
                 f"quoted history (text_clean), attachment details and sender authentication. text is capped at "
                 f"{DEFAULT_TEXT_CHARS} characters by default; when truncated is true, call again with "
                 "offset=next_offset or a larger max_chars. HTML and links come only when asked. It does not mark "
                 "the email read. " + UNTRUSTED_CONTENT + " Check authentication before trusting who sent it."),
    input=GetEmailInput, output=EmailOut, scope=EMAIL_READ, plan_group=TOOL_GROUP_MAIL, annotations=READ_ONLY,
    method="GET", path="emails/{email_id}", handler=_get_email,
))
