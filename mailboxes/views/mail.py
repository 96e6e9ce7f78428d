"""Dashboard pages for reading mail: folder lists, search, one email, its HTML body and attachments, actions.

Everything here goes through the mail selectors and services; mail content is data from strangers and
reaches the page only through template autoescaping (or, for HTML, the sandboxed endpoint below).
"""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from mailboxes.models import Folder
from mailboxes.selectors import access_mailbox
from mailboxes.store.folders import FOLDER_VIEWS
from mailboxes.tasks import mail_purge_trash_task
from mailboxes.store.search import email_search
from mailboxes.store.selectors import (PREVIEW_CHARS, conversation_get, email_count, email_get, email_list,
                                       emails_selected)
from mailboxes.store.services import email_delete_forever, email_restore, email_trash, email_update, trash_empty
from mailboxes.views.content import email_html_document, email_html_policy, has_remote_images
from mailboxes.forms import MOVE_TARGETS, SearchForm
from mailboxes.views.sidebar import FOLDER_LABELS, mail_sidebar
from core.errors import AppError, Invalid
from core.forms import app_error_message
from core.pagination import Page
from core.web import form_action
from accounts.web import account_view

PAGE_SIZE = 50
FLAG_ACTIONS = {"read": {"is_read": True}, "unread": {"is_read": False},
                "star": {"is_starred": True}, "unstar": {"is_starred": False},
                "archive": {"folder": Folder.ARCHIVE}, "inbox": {"folder": Folder.INBOX}}
ACTIONS = (*FLAG_ACTIONS, "move", "trash", "restore", "delete")
# (one email, several) — the flash message after an action.
ACTION_DONE = {"read": ("Marked read.", "Marked {n} emails read."), "unread": ("Marked unread.", "Marked {n} emails unread."),
               "star": ("Starred.", "Starred {n} emails."), "unstar": ("Star removed.", "Removed the star from {n} emails."),
               "archive": ("Archived.", "Archived {n} emails."), "inbox": ("Moved to Inbox.", "Moved {n} emails to Inbox."),
               "move": ("Moved.", "Moved {n} emails."), "trash": ("Moved to Trash.", "Moved {n} emails to Trash."),
               "restore": ("Restored.", "Restored {n} emails."), "delete": ("Deleted for good.", "Deleted {n} emails for good.")}


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


def _first_page_url(request):
    params = request.GET.copy()
    for key in ("cursor", "before", "start"):
        params.pop(key, None)
    return f"?{params.urlencode()}"


def _folder(request):
    folder = (request.GET.get("folder") or Folder.INBOX).upper()
    return folder if folder in FOLDER_VIEWS else Folder.INBOX


def _mail_list(request, account, *, mailbox):
    """A folder of one mailbox, or (mailbox None) of every mailbox; or a search within it."""
    folder = _folder(request)
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
    list_url = reverse("mailboxes:mail", args=[mailbox.id]) if mailbox else reverse("mail:inbox")
    context = {"mailbox": mailbox, "folder": folder, "folder_label": FOLDER_LABELS.get(folder, folder.title()),
               "form": form, "searching": searching, "page": page, "older_url": _older_url(request, page, start),
               "error": error, "is_first_page": not (cursor or before), "list_url": list_url,
               "move_targets": MOVE_TARGETS, "here": request.get_full_path(),
               **mail_sidebar(account=account, mailbox=mailbox, folder=folder)}
    # Rows say which mailbox they are in only where several could be mixed.
    context["show_mailbox"] = mailbox is None and len(context["sidebar_mailboxes"]) > 1
    if searching:
        # Search pages only go forward; the way back is the first page of the same search.
        context["newest_url"] = _first_page_url(request) if cursor else None
    elif total is not None:
        context.update(newer_url=_newer_url(request, page, start), total=total[0], total_capped=total[1],
                       start=start, end=start + len(page.items) - 1 if start else None)
    return render(request, "mailboxes/mail_list.html", context, status=400 if error or form.errors else 200)


@account_view
@require_GET
def inbox_view(request, account):
    """The unified views: a folder across every mailbox of the account (all inboxes by default)."""
    return _mail_list(request, account, mailbox=None)


@account_view
@require_GET
def mailbox_mail_view(request, account, mailbox_id):
    return _mail_list(request, account, mailbox=access_mailbox(account=account, mailbox_id=mailbox_id))


@account_view
@require_GET
def mail_search_view(request, account):
    """Search across every mailbox of the account, with every filter of the search selector."""
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
               "newest_url": _first_page_url(request) if cursor else None, "error": error, "is_first_page": not cursor,
               "move_targets": MOVE_TARGETS, "here": request.get_full_path(),
               **mail_sidebar(account=account, current="search")}
    context["show_mailbox"] = len(context["sidebar_mailboxes"]) > 1
    return render(request, "mailboxes/mail_search.html", context, status=400 if error or form.errors else 200)


def _message_view(request, email, *, focused):
    """How one message of a conversation shows: HTML by default when it has HTML, else its text. Only the
    focused message is loaded whole; the others carry has_html and a text_preview (conversation_get)."""
    has_html = bool(email.html) if focused else email.has_html
    show_html = has_html and not (focused and request.GET.get("view") == "text")
    remote_images = show_html and focused and request.GET.get("images") == "1"
    return {"email": email, "focused": focused, "show_html": show_html, "has_html": has_html,
            "text": email.text if focused else email.text_preview,
            "text_cut": not focused and len(email.text_preview) >= PREVIEW_CHARS,
            "html_url": reverse("mail:html", args=[email.id]) + ("?images=1" if remote_images else ""),
            "remote_images": remote_images, "offers_remote_images": show_html and focused and has_remote_images(email.html),
            "attachments": list(email.attachments.all())}


@account_view
@require_GET
def email_detail_view(request, account, email_id):
    """The conversation an email belongs to, with that email open; the others folded (open when unread)."""
    email = email_get(account=account, email_id=email_id)
    if not email.is_read:
        email_update(email=email, is_read=True)
        email.is_read = True
    thread = conversation_get(account=account, email=email)
    messages_in_thread = [_message_view(request, message, focused=message.pk == email.pk) for message in thread.emails]
    focused = next((item for item in messages_in_thread if item["focused"]), _message_view(request, email, focused=True))
    list_url = reverse("mailboxes:mail", args=[email.mailbox_id]) + f"?folder={email.folder}"
    context = {"email": email, "mailbox": email.mailbox, "thread": thread.thread, "conversation": messages_in_thread,
               "hidden_count": max(thread.thread.message_count - len(messages_in_thread), 0),
               "focused": focused, "list_url": list_url, "here": request.get_full_path(),
               "move_targets": [(value, label) for value, label in MOVE_TARGETS if value != email.folder],
               **mail_sidebar(account=account, mailbox=email.mailbox, folder=email.folder)}
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


def _apply(email, action, folder=""):
    if action in FLAG_ACTIONS:
        email_update(email=email, **FLAG_ACTIONS[action])
    elif action == "move":
        email_update(email=email, folder=folder)
    elif action == "trash":
        email_trash(email=email)
    elif action == "restore":
        email_restore(email=email)
    elif action == "delete":
        email_delete_forever(email=email)
    else:
        raise Invalid("Choose one of the actions offered with the email.", field="action")


def _next(request, fallback):
    """Where to go after an action: the page it came from (same site only), else `fallback`."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@account_view
@require_POST
def email_action_view(request, account, email_id):
    email = email_get(account=account, email_id=email_id)
    action = request.POST.get("action", "")
    list_url = f"{reverse('mailboxes:mail', args=[email.mailbox_id])}?folder={email.folder}"
    detail_url = reverse("mail:detail", kwargs={"email_id": email.id})
    # Opening the email again would mark it read, and a moved one has left the list it came from.
    leaves = action in ("unread", "trash", "move", "archive", "inbox", "delete", "restore")
    # ACTION_DONE is read only after _apply has accepted the action (an unknown one is an Invalid, not a KeyError).
    return form_action(request, lambda: _apply(email, action, request.POST.get("folder", "")),
                       success=lambda _: ACTION_DONE[action][0], then=_next(request, list_url) if leaves else detail_url,
                       on_error=detail_url)


@account_view
@require_POST
def bulk_action_view(request, account):
    """One action on the emails ticked in a list ("ids"), each through the same services as a single one."""
    action = request.POST.get("action", "")
    back = _next(request, reverse("mail:inbox"))
    if action not in ACTIONS:
        messages.error(request, "Choose what to do with the selected emails.")
        return redirect(back)
    try:
        emails = emails_selected(account=account, email_ids=request.POST.getlist("ids"))
    except Invalid as exc:
        messages.error(request, exc.detail)
        return redirect(back)
    if not emails:
        messages.error(request, "Select one or more emails first (the boxes at the start of each row).")
        return redirect(back)
    done, failures = 0, []
    for email in emails:
        try:
            _apply(email, action, request.POST.get("folder", ""))
            done += 1
        except AppError as exc:
            failures.append(app_error_message(exc))
    if done:
        single, several = ACTION_DONE[action]
        messages.success(request, single if done == 1 else several.format(n=f"{done:,}"))
    if failures:
        skipped = len(failures)
        messages.error(request, f"{skipped:,} email{pluralize(skipped)} could not be changed: {failures[0]}")
    return redirect(back)


@account_view
@require_POST
def trash_empty_view(request, account):
    """Delete for good everything in Trash: of one mailbox ("mailbox") or, without it, of every mailbox."""
    mailbox_id = request.POST.get("mailbox") or None
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id) if mailbox_id else None
    purged, left = trash_empty(account=account, mailbox=mailbox)
    if left:
        mail_purge_trash_task.delay()
        messages.success(request, f"Emptying trash: {purged:,} emails deleted for good; the other {left:,} go in the "
                                  "background within a minute.")
    elif purged:
        messages.success(request, f"Trash emptied: {purged:,} email{pluralize(purged)} deleted for good.")
    else:
        messages.info(request, "Trash was already empty.")
    back = reverse("mailboxes:mail", args=[mailbox.id]) if mailbox else reverse("mail:inbox")
    return redirect(f"{back}?folder={Folder.TRASH}")
