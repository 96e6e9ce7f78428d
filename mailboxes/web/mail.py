"""Dashboard pages for reading mail: folder lists, search, one email, its HTML body and attachments, actions.

Everything here goes through the mail selectors and services; mail content is data from strangers and
reaches the page only through template autoescaping (or, for HTML, the sandboxed endpoint below).
"""

from django.contrib import messages
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from mailboxes.store.folders import STARRED
from mailboxes.web.forms import MOVE_TARGETS, SearchForm
from mailboxes.store.selectors import attachment_get, email_count, email_get, email_list, thread_get
from mailboxes.store.services import email_restore, email_trash, email_update
from mailboxes.web.content import attachment_download_name, email_html_document, email_html_policy, has_remote_images
from mailboxes.models import Folder
from mailboxes.store.search import email_search
from mailboxes.selectors import access_mailbox
from qmailing.errors import AppError, Invalid
from qmailing.forms import app_error_message
from qmailing.pagination import Page
from qmailing.web import account_view

PAGE_SIZE = 50
FOLDER_TABS = [(Folder.INBOX, "Inbox"), (STARRED, "Starred"), (Folder.SENT, "Sent"), (Folder.DRAFTS, "Drafts"),
               (Folder.ARCHIVE, "Archive"), (Folder.SPAM, "Spam"), (Folder.TRASH, "Trash")]
FLAG_ACTIONS = {"read": {"is_read": True}, "unread": {"is_read": False},
                "star": {"is_starred": True}, "unstar": {"is_starred": False}}
ACTION_DONE = {"read": "Marked read.", "unread": "Marked unread.", "star": "Starred.", "unstar": "Star removed.",
               "move": "Moved.", "trash": "Moved to Trash.", "restore": "Restored."}


def _older_url(request, page, start=None):
    """The same query with the next keyset cursor; None on the last page."""
    if not page.next_cursor:
        return None
    params = request.GET.copy()
    params.pop("before", None)
    params["cursor"] = page.next_cursor
    if start is not None:
        params["start"] = start + len(page.items)
    return f"?{params.urlencode()}"


def _newer_url(request, page, start):
    """The same query, one page towards the newest (the page's prev_cursor as `before`); None on the newest page."""
    if not page.prev_cursor:
        return None
    params = request.GET.copy()
    params.pop("cursor", None)
    params["before"] = page.prev_cursor
    params["start"] = max(start - PAGE_SIZE, 1)
    return f"?{params.urlencode()}"


def _start(request, page):
    """The 1-based position of the page's first email, for "51–100 of 1,234". Keyset pages do not know it, so the
    Older/Newer links carry it; the newest page is always 1. Display only: nothing is looked up by it."""
    if not page.prev_cursor:
        return 1
    try:
        return max(int(request.GET.get("start", "")), 1)
    except ValueError:
        return 1


@account_view
@require_GET
def mailbox_mail_view(request, account, mailbox_id):
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)
    folder = (request.GET.get("folder") or Folder.INBOX).upper()
    form = SearchForm(request.GET if "q" in request.GET else None)
    searching = form.is_searching()
    cursor = request.GET.get("cursor") or None
    before = request.GET.get("before") or None
    error, total = None, None
    try:
        if searching:
            page = email_search(account=account, mailbox=mailbox, cursor=cursor, limit=PAGE_SIZE, **form.search_arguments())
        else:
            page = email_list(account=account, mailbox=mailbox, folder=folder, cursor=cursor, before=before, limit=PAGE_SIZE)
            total = email_count(account=account, mailbox=mailbox, folder=folder)
    except Invalid as exc:
        page, error = Page(), exc.detail
    start = _start(request, page) if total is not None else None
    context = {"mailbox": mailbox, "folder": folder, "tabs": FOLDER_TABS, "form": form, "searching": searching,
               "page": page, "older_url": _older_url(request, page, start), "error": error,
               "is_first_page": not (cursor or before)}
    if searching:
        # Search pages only go forward; the way back is the first page of the same search.
        context["newest_url"] = _first_page_url(request) if cursor else None
    elif total is not None:
        context.update(newer_url=_newer_url(request, page, start), total=total[0], total_capped=total[1],
                       start=start, end=start + len(page.items) - 1 if start else None)
    return render(request, "mailboxes/mail_list.html", context, status=400 if error else 200)


def _first_page_url(request):
    params = request.GET.copy()
    for key in ("cursor", "before", "start"):
        params.pop(key, None)
    return f"?{params.urlencode()}"


@account_view
@require_GET
def mail_search_view(request, account):
    """Search across every mailbox of the account."""
    form = SearchForm(request.GET or None)
    searching = form.is_searching()
    cursor = request.GET.get("cursor") or None
    page, error = Page(), None
    if searching:
        try:
            page = email_search(account=account, cursor=cursor, limit=PAGE_SIZE, **form.search_arguments())
        except Invalid as exc:
            error = exc.detail
    context = {"form": form, "searching": searching, "page": page, "older_url": _older_url(request, page),
               "newest_url": _first_page_url(request) if cursor else None, "error": error, "is_first_page": not cursor}
    return render(request, "mailboxes/mail_search.html", context, status=400 if error or form.errors else 200)


@account_view
@require_GET
def email_detail_view(request, account, email_id):
    email = email_get(account=account, email_id=email_id)
    if not email.is_read:
        email_update(email=email, is_read=True)
        email.is_read = True
    thread = thread_get(account=account, thread_id=email.thread_id)
    show_html = request.GET.get("view") == "html" and bool(email.html)
    remote_images = show_html and request.GET.get("images") == "1"
    html_url = reverse("mail:html", args=[email.id]) + ("?images=1" if remote_images else "")
    context = {"email": email, "mailbox": email.mailbox, "attachments": list(email.attachments.all()),
               "thread_emails": thread.emails, "show_html": show_html, "html_url": html_url,
               "remote_images": remote_images, "offers_remote_images": show_html and has_remote_images(email.html),
               "move_targets": [(value, label) for value, label in MOVE_TARGETS if value != email.folder]}
    return render(request, "mailboxes/email.html", context)


@account_view
@require_GET
@xframe_options_sameorigin
def email_html_view(request, account, email_id):
    """The stored (nh3-sanitised) HTML as its own document, for the sandboxed iframe on the email page."""
    email = email_get(account=account, email_id=email_id)
    response = HttpResponse(email_html_document(email.html), content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = email_html_policy(remote_images=request.GET.get("images") == "1")
    response["X-Content-Type-Options"] = "nosniff"
    # Remote images, when allowed, must not tell their senders which page they were opened from.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


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


@account_view
@require_POST
def email_action_view(request, account, email_id):
    email = email_get(account=account, email_id=email_id)
    action = request.POST.get("action", "")
    folder_before = email.folder
    try:
        if action in FLAG_ACTIONS:
            email_update(email=email, **FLAG_ACTIONS[action])
        elif action == "move":
            email_update(email=email, folder=request.POST.get("folder", ""))
        elif action == "trash":
            email_trash(email=email)
        elif action == "restore":
            email_restore(email=email)
        else:
            raise Invalid("Choose one of the actions on the email page.", field="action")
    except AppError as exc:
        messages.error(request, app_error_message(exc))
        return redirect("mail:detail", email_id=email.id)
    messages.success(request, ACTION_DONE[action])
    if action in ("unread", "trash", "move"):
        # Opening the email again would mark it read, and a moved one has left the list it came from.
        return redirect(f"{reverse('mailboxes:mail', args=[email.mailbox_id])}?folder={folder_before}")
    return redirect("mail:detail", email_id=email.id)
