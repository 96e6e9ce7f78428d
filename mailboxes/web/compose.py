"""Dashboard pages for sending mail: a new message from a mailbox, or a reply to a stored email."""

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from mailboxes.outbound.composition import reply_recipients, reply_subject
from mailboxes.web.forms import ComposeForm
from mailboxes.store.selectors import email_get
from mailboxes.outbound.send import email_send
from mailboxes.selectors import access_mailbox
from qmailing.errors import AppError
from qmailing.forms import add_app_error
from qmailing.web import account_view, render_form


def _compose(request, account, *, mailbox, initial=None, parent=None):
    form = ComposeForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            copy = email_send(account=account, mailbox=mailbox, reply_to_email_id=parent.id if parent else None,
                              **form.send_arguments())
        except AppError as exc:
            add_app_error(form, exc)
        else:
            messages.success(request, "Sent.")
            return redirect("mail:detail", email_id=copy.id)
    context = {"form": form, "mailbox": mailbox, "parent": parent}
    return render_form(request, "mailboxes/compose.html", context)


@account_view
@require_http_methods(["GET", "POST"])
def compose_view(request, account, mailbox_id):
    mailbox = access_mailbox(account=account, mailbox_id=mailbox_id)
    return _compose(request, account, mailbox=mailbox)


def _quoted(email):
    who = email.from_name or email.from_address
    when = email.date or email.received_at
    lines = (email.text_clean or email.text or "").splitlines()
    return f"\n\nOn {when:%Y-%m-%d %H:%M}, {who} wrote:\n" + "\n".join(f"> {line}" for line in lines)


@account_view
@require_http_methods(["GET", "POST"])
def reply_view(request, account, email_id):
    parent = email_get(account=account, email_id=email_id)
    initial = {"to": ", ".join(reply_recipients(parent)), "subject": reply_subject(parent.subject), "text": _quoted(parent)}
    return _compose(request, account, mailbox=parent.mailbox, initial=initial, parent=parent)
