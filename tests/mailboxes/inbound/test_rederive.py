"""mail_rederive: stored mail gets the parsing fixes, recomputed from its raw message."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import Attachment, Email
from mailboxes.store.search import email_search
from tests.mailboxes.outbound_helpers import receive


def _run(*args):
    out, err = StringIO(), StringIO()
    call_command("mail_rederive", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_mail_stored_before_a_fix_is_recomputed_once(owner, mailbox, other_mailbox):
    email = receive(mailbox, subject="Quarterly", text="Numbers are in.\n\nOn Mon, Ann wrote:\n> old\n",
                    attachments=[("notes.txt", "text/plain", b"heron\r\ncommittee")])
    untouched = receive(other_mailbox, subject="Other")
    # As an older version stored it: CRLF in the text, the reply text cut wrongly, no links.
    Email.objects.filter(pk=email.pk).update(text="\r\nNumbers are in.\r\n", text_clean="", snippet="\r\n")
    Attachment.objects.filter(email=email).update(extracted_text="heron\r\ncommittee")
    out, err = _run("--mailbox", mailbox.address, "--batch", "1")
    assert "rederived 1 email(s): 1 changed, 0 failed" in out and err == ""
    email.refresh_from_db()
    assert "\r" not in email.text and email.text_clean.startswith("Numbers are in.") and email.snippet
    assert Attachment.objects.get(email=email).extracted_text == "heron\ncommittee"
    assert [found.subject for found in email_search(account=owner, query="heron").items] == ["Quarterly"]
    assert "rederived 2 email(s): 0 changed, 0 failed" in _run()[0]  # running again changes nothing
    untouched.refresh_from_db()
    assert untouched.subject == "Other"


def test_an_unknown_mailbox_is_a_clear_error(db):
    with pytest.raises(CommandError):
        _run("--mailbox", "nobody@nowhere.example")
