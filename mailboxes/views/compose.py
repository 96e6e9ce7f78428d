"""Dashboard pages for writing mail: a new message (with a From chooser), reply, reply-all, forward, and drafts
that save themselves while you type and can be resumed.

One page, /mail/compose/, shaped by its query: ?from=<mailbox>, ?reply=<email>[&all=1], ?forward=<email>,
?draft=<draft>. Sending goes through outbound.send (email_send, email_send_forward) or drafts.draft_send, so
every check and limit of the API applies; saving goes through drafts.draft_create / draft_update.
"""

from django.contrib import messages
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailboxes.outbound.composition import forward_subject, reply_all_recipients, reply_recipients, reply_subject
from mailboxes.outbound.send import email_send, email_send_forward
from mailboxes.selectors import access_mailbox, mailbox_list
from mailboxes.store.drafts import access_draft, draft_create, draft_delete, draft_list, draft_send, draft_update
from mailboxes.store.selectors import email_get
from mailboxes.forms import ComposeForm
from mailboxes.views.sidebar import mail_sidebar
from core.errors import AppError
from core.forms import add_app_error, app_error_message
from accounts.web import account_view

AUTOSAVE_HEADER = "X-Autosave"  # the page's script saves with this header and gets JSON back


def _quoted(email):
    who = email.from_name or email.from_address
    when = email.date or email.received_at
    lines = (email.text_clean or email.text or "").splitlines()
    return f"\n\nOn {when:%Y-%m-%d %H:%M}, {who} wrote:\n" + "\n".join(f"> {line}" for line in lines)


class Composition:
    """What the page is writing: a new message, a reply (to one or all), a forward, or a resumed draft."""

    def __init__(self, account, params):
        self.account = account
        self.draft = access_draft(account=account, draft_id=params["draft"]) if params.get("draft") else None
        self.parent = self.forwarded = None
        self.reply_all = params.get("all") == "1"
        if self.draft is not None:
            self.parent = self.draft.reply_to_email
        elif params.get("reply"):
            self.parent = email_get(account=account, email_id=params["reply"])
        elif params.get("forward"):
            self.forwarded = email_get(account=account, email_id=params["forward"])

    @property
    def kind(self):
        if self.forwarded is not None:
            return "forward"
        if self.parent is not None:
            return "reply_all" if self.reply_all else "reply"
        return "new"

    def senders(self, requested=None):
        """The mailboxes it may go from: a reply goes from the mailbox that got the email (its thread lives there)."""
        if self.draft is not None and self.parent is not None:
            return [self.draft.mailbox]
        if self.parent is not None:
            return [self.parent.mailbox]
        boxes = [box for box in mailbox_list(account=self.account) if box.is_active]
        if self.draft is not None and self.draft.mailbox not in boxes:
            boxes.insert(0, self.draft.mailbox)
        return boxes

    def initial(self, sender_id=None):
        if self.draft is not None:
            draft = self.draft
            return {"sender": str(draft.mailbox_id), "to": ", ".join(draft.to), "cc": ", ".join(draft.cc),
                    "bcc": ", ".join(draft.bcc), "subject": draft.subject, "text": draft.text}
        if self.forwarded is not None:
            return {"sender": str(self.forwarded.mailbox_id), "subject": forward_subject(self.forwarded.subject)}
        if self.parent is not None:
            parent = self.parent
            if self.reply_all:
                to, cc = reply_all_recipients(parent, own_address=parent.mailbox.address)
            else:
                to, cc = reply_recipients(parent), []
            return {"sender": str(parent.mailbox_id), "to": ", ".join(to), "cc": ", ".join(cc),
                    "subject": reply_subject(parent.subject), "text": _quoted(parent)}
        return {"sender": sender_id or ""}

    def title(self):
        subject = (self.parent or self.forwarded).subject if (self.parent or self.forwarded) else ""
        subject = subject or "(no subject)"
        return {"forward": f"Forward “{subject}”", "reply": f"Reply to “{subject}”",
                "reply_all": f"Reply to all on “{subject}”"}.get(self.kind, "Resume draft" if self.draft else "New message")

    def hidden(self):
        """The query that keeps the page what it is across a POST."""
        if self.draft is not None:
            return {"draft": self.draft.pk}
        if self.forwarded is not None:
            return {"forward": self.forwarded.pk}
        if self.parent is not None:
            return {"reply": self.parent.pk, **({"all": "1"} if self.reply_all else {})}
        return {}


def _files(draft, keep, uploads):
    """The attachments a draft should hold: those of its files the person kept, then the new uploads."""
    files = []
    for attachment in draft.attachments.all() if draft is not None else ():
        if str(attachment.position) in keep:
            with attachment.file.open("rb") as handle:
                files.append((attachment.filename, attachment.content_type, handle.read()))
    return files + uploads


def _save(composition, form, mailbox, *, with_files):
    """Create or update the draft with the form's content; returns it."""
    data = form.cleaned_data
    fields = {"to": data["to"], "cc": data["cc"], "bcc": data["bcc"], "subject": data["subject"], "text": data["text"]}
    draft = composition.draft
    if draft is not None and draft.mailbox_id != mailbox.pk:
        # A new From: the draft moves by being saved anew there (drafts belong to one mailbox).
        files = _files(draft, form.kept_attachments(), form.uploads())
        new = draft_create(account=composition.account, mailbox=mailbox, attachments=files, created_via="Dashboard", **fields)
        draft_delete(draft=draft)
        return new
    if draft is None:
        return draft_create(account=composition.account, mailbox=mailbox, created_via="Dashboard",
                            reply_to_email_id=composition.parent.pk if composition.parent else None,
                            attachments=form.uploads() if with_files else (), **fields)
    attachments = _files(draft, form.kept_attachments(), form.uploads()) if with_files else None
    return draft_update(draft=draft, attachments=attachments, **fields)


def _send(composition, form, mailbox):
    data = form.cleaned_data
    if composition.forwarded is not None:
        return email_send_forward(account=composition.account, email=composition.forwarded, to=data["to"],
                                  cc=data["cc"], bcc=data["bcc"], note=data["text"], mailbox=mailbox)
    if composition.draft is not None:
        draft = _save(composition, form, mailbox, with_files=True)
        return draft_send(draft=draft)
    return email_send(account=composition.account, mailbox=mailbox, to=data["to"], cc=data["cc"], bcc=data["bcc"],
                      subject=data["subject"], text=data["text"], attachments=form.uploads(),
                      reply_to_email_id=composition.parent.pk if composition.parent else None)


@account_view
@require_http_methods(["GET", "POST"])
def compose_view(request, account):
    params = request.POST if request.method == "POST" else request.GET
    composition = Composition(account, params)
    senders = composition.senders()
    form = ComposeForm(request.POST or None, request.FILES or None, senders=senders, kind=composition.kind,
                       initial=composition.initial(request.GET.get("from")))
    autosave = request.headers.get(AUTOSAVE_HEADER) == "1"
    if request.method == "POST" and form.is_valid():
        mailbox = form.sender_mailbox()
        action = request.POST.get("action", "send")
        try:
            if autosave or action == "save":
                if composition.forwarded is not None:
                    form.add_error(None, "A forward cannot be kept as a draft: send it, or start a new message.")
                else:
                    draft = _save(composition, form, mailbox, with_files=not autosave)
                    if autosave:
                        return JsonResponse({"draft": str(draft.pk), "saved_at": timezone.localtime(draft.updated_at).strftime("%H:%M:%S")})
                    messages.success(request, "Draft saved.")
                    return redirect(f"{reverse('mail:compose')}?draft={draft.pk}")
            else:
                copy = _send(composition, form, mailbox)
                messages.success(request, "Sent.")
                return redirect("mail:detail", email_id=copy.id)
        except AppError as exc:
            if autosave:
                return JsonResponse({"error": app_error_message(exc)}, status=exc.status)
            add_app_error(form, exc)
    elif autosave:
        return JsonResponse({"error": "; ".join(str(error) for errors in form.errors.values() for error in errors)}, status=400)
    context = {"form": form, "composition": composition, "title": composition.title(), "hidden": composition.hidden(),
               "draft": composition.draft, "parent": composition.parent, "forwarded": composition.forwarded,
               "forwarded_attachments": list(composition.forwarded.attachments.all()) if composition.forwarded else [],
               "draft_attachments": list(composition.draft.attachments.all()) if composition.draft else [],
               **mail_sidebar(account=account, mailbox=None, current="compose")}
    return render(request, "mailboxes/compose.html", context, status=400 if form.errors else 200)


@account_view
def mailbox_compose_view(request, account, mailbox_id):
    """The per-mailbox address: the compose page with this mailbox chosen as From."""
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)  # 404 for another account's, whatever the method
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return redirect(f"{reverse('mail:compose')}?from={mailbox.pk}")


@account_view
def reply_view(request, account, email_id):
    """The older reply address: the compose page replying to this email."""
    email = email_get(account=account, email_id=email_id)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return redirect(f"{reverse('mail:compose')}?reply={email.pk}")


@account_view
@require_GET
def drafts_view(request, account):
    page = draft_list(account=account, cursor=request.GET.get("cursor") or None, limit=50)
    older_url = f"?cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "mailboxes/drafts.html", {"page": page, "older_url": older_url,
                                                     **mail_sidebar(account=account, current="drafts")})


@account_view
@require_POST
def draft_delete_view(request, account, draft_id):
    draft = access_draft(account=account, draft_id=draft_id)
    draft_delete(draft=draft)
    messages.success(request, "Draft deleted.")
    return redirect("mail:drafts")
