"""Attachment downloads: from the email page (signed-in), and from a signed link an agent was given
(mailboxes.store.download issues and checks those links; no session needed)."""

from django.http import FileResponse, JsonResponse
from django.views.decorators.http import require_GET

from accounts.web import account_view
from core.errors import AppError, problem_details
from mailboxes.store.download import attachment_from_token
from mailboxes.store.selectors import attachment_get
from mailboxes.views.content import attachment_download_name


@account_view
@require_GET
def attachment_download_view(request, account, email_id, index):
    attachment = attachment_get(account=account, email_id=email_id, index=index)
    # The sender chose the content type; a download never needs it, and octet-stream is never rendered.
    response = FileResponse(attachment.file.open("rb"), as_attachment=True, content_type="application/octet-stream",
                            filename=attachment_download_name(attachment))
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def attachment_download(request, token):
    """/dl/attachments/<token>: machine-facing, so its errors are problem details, not the product's pages."""
    try:
        attachment = attachment_from_token(token)
    except AppError as error:
        return JsonResponse(problem_details(error, instance=request.path), status=error.status,
                            content_type="application/problem+json")
    response = FileResponse(attachment.file.open("rb"), as_attachment=True,
                            filename=attachment.filename or f"attachment-{attachment.position}",
                            content_type="application/octet-stream")
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
