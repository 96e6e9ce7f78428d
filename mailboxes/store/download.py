"""Attachments for agents: inline bytes up to a cap, and above it a short-lived signed download URL.

The URL is the capability: it names one attachment and the account it was issued to, signed with
TimestampSigner and refused after DOWNLOAD_TTL_SECONDS. The download view (mailboxes.views.attachments)
checks, through attachment_from_token, the signature, the age and that the attachment still belongs to
that account; no session or token is involved, so it works in a browser or with curl, and a URL for one
attachment can never fetch another.
"""

from django.core import signing
from django.urls import reverse

from mailboxes.models import Attachment
from mailboxes.store.selectors import attachment_get
from core.errors import AppError, NotFound
from django.conf import settings

INLINE_ATTACHMENT_BYTES = 5 * 1024 * 1024  # get_attachment returns bytes up to this; above, a download URL
DOWNLOAD_TTL_SECONDS = 10 * 60
_SALT = "qmailing.attachment-download"


class AttachmentTooLarge(AppError):
    status = 413
    code = "attachment_too_large"
    title = "Attachment too large to return inline"


def download_token(*, attachment, account_id):
    return signing.TimestampSigner(salt=_SALT).sign_object({"a": str(attachment.pk), "c": str(account_id)})


def download_url(*, attachment, account_id):
    return settings.QMAILING_BASE_URL + reverse("attachment-download", args=[download_token(attachment=attachment, account_id=account_id)])


def attachment_inline(*, account, email_id, index, mailbox_ids=None) -> Attachment:
    """The attachment with its bytes in `.content`, or AttachmentTooLarge carrying a signed download URL."""
    attachment = attachment_get(account=account, email_id=email_id, index=index, mailbox_ids=mailbox_ids)
    if attachment.size > INLINE_ATTACHMENT_BYTES:
        cap_mb = INLINE_ATTACHMENT_BYTES // (1024 * 1024)
        raise AttachmentTooLarge(
            f"{attachment.filename or 'This attachment'} is {attachment.size} bytes, above the {cap_mb} MB inline cap. "
            f"Download it from downloadUrl within {DOWNLOAD_TTL_SECONDS // 60} minutes, or read extracted text "
            "with qmailing_get_email.",
            limit=INLINE_ATTACHMENT_BYTES, size=attachment.size,
            downloadUrl=download_url(attachment=attachment, account_id=account.pk),
            downloadExpiresIn=DOWNLOAD_TTL_SECONDS)
    with attachment.file.open("rb") as handle:
        attachment.content = handle.read()
    return attachment


def attachment_from_token(token) -> Attachment:
    """The attachment a download token names, if the token is genuine, fresh and the account still owns it."""
    try:
        claims = signing.TimestampSigner(salt=_SALT).unsign_object(token, max_age=DOWNLOAD_TTL_SECONDS)
        return Attachment.objects.select_related("email").get(pk=claims["a"], email__account_id=claims["c"])
    except signing.SignatureExpired:
        raise NotFound("This download link has expired; call qmailing_get_attachment again for a new one.",
                       code="download_link_expired")
    except (signing.BadSignature, Attachment.DoesNotExist, KeyError, TypeError, ValueError):
        raise NotFound("This download link is not valid.")
