from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.mailboxes.counters_check import counters_exact
from mailboxes.store.selectors import attachment_get, email_get, email_list, thread_get, thread_list
from mailboxes.store.services import email_purge, email_restore, email_trash, email_update, emails_purge_expired
from mailboxes.models import Email, Folder, Thread
from mailboxes.tasks import mail_purge_trash_task
from core.errors import Invalid, NotFound
from tests.mailboxes.outbound_helpers import receive
from events.models import Event


def test_flags_and_moves_keep_counterscounters_exact(mailbox):
    email = receive(mailbox, subject="One")
    assert counters_exact(mailbox)[:2] == (1, 1)
    email = email_update(email=email, is_read=True, is_starred=True)
    assert counters_exact(mailbox)[:2] == (1, 0)
    email = email_update(email=email, is_read=False, folder=Folder.SPAM)
    assert counters_exact(mailbox)[:2] == (1, 0)  # unread mail in SPAM is not counted
    email = email_update(email=email, folder=Folder.ARCHIVE)
    assert counters_exact(mailbox)[:2] == (1, 1)
    email_update(email=email, is_read=False)  # no change, no drift
    assert counters_exact(mailbox)[:2] == (1, 1)
    with pytest.raises(Invalid):
        email_update(email=email, folder="NOPE")


def test_trash_then_restore_returns_to_the_folder_it_came_from(mailbox):
    email = email_update(email=receive(mailbox, subject="Keep"), folder=Folder.ARCHIVE)
    trashed = email_trash(email=email)
    assert trashed.folder == Folder.TRASH and trashed.previous_folder == Folder.ARCHIVE
    assert trashed.purge_after - trashed.trashed_at == timedelta(days=30)
    assert Event.objects.filter(type="email.trashed", payload__email_id=str(email.id)).exists()
    assert counters_exact(mailbox)[:2] == (1, 0)
    restored = email_restore(email=trashed)
    assert (restored.folder, restored.previous_folder, restored.purge_after) == (Folder.ARCHIVE, "", None)
    assert counters_exact(mailbox)[:2] == (1, 1)


def test_trash_through_update_and_twice_is_one_event(mailbox):
    email = receive(mailbox)
    email_update(email=email, folder=Folder.TRASH)
    email_trash(email=email)
    assert Event.objects.filter(type="email.trashed").count() == 1


def test_purge_after_retention_deletes_rows_and_files(mailbox, django_capture_on_commit_callbacks):
    email = receive(mailbox, subject="Old", attachments=[("a.txt", "text/plain", b"attached words")])
    kept = receive(mailbox, subject="New")
    raw_name, file_name = email.raw.name, email.attachments.get().file.name
    assert default_storage.exists(raw_name) and default_storage.exists(file_name)
    email_trash(email=email)
    email_trash(email=kept)
    assert emails_purge_expired() == 0  # not yet 30 days
    with django_capture_on_commit_callbacks(execute=True):
        assert emails_purge_expired(now=timezone.now() + timedelta(days=30, seconds=1)) == 2
    assert not Email.objects.filter(pk=email.pk).exists()
    assert not default_storage.exists(raw_name) and not default_storage.exists(file_name)
    assert not Thread.objects.filter(pk=email.thread_id).exists()
    assert counters_exact(mailbox) == (0, 0, 0)


def test_purge_task_leaves_unexpired_trash(mailbox):
    email = email_trash(email=receive(mailbox))
    assert mail_purge_trash_task() == 0
    assert Email.objects.filter(pk=email.pk, folder=Folder.TRASH).exists()


def test_purge_keeps_the_thread_of_remaining_messages(mailbox):
    first = receive(mailbox, subject="Topic", message_id="t1@x.example")
    second = receive(mailbox, subject="Re: Topic", message_id="t2@x.example", in_reply_to="t1@x.example")
    assert first.thread_id == second.thread_id
    email_purge(email=second)
    thread = Thread.objects.get(pk=first.thread_id)
    assert thread.message_count == 1
    counters_exact(mailbox)


def test_list_pages_by_cursor_and_stays_stable_when_mail_arrives(mailbox):
    for index in range(5):
        receive(mailbox, subject=f"m{index}")
    first = email_list(account=mailbox.account, mailbox=mailbox, folder="INBOX", limit=2)
    assert [e.subject for e in first.items] == ["m4", "m3"] and first.next_cursor
    receive(mailbox, subject="late arrival")
    second = email_list(account=mailbox.account, mailbox=mailbox.id, folder="INBOX", limit=2, cursor=first.next_cursor)
    third = email_list(account=mailbox.account, mailbox=mailbox, folder="INBOX", limit=2, cursor=second.next_cursor)
    assert [e.subject for e in second.items + third.items] == ["m2", "m1", "m0"]
    assert third.next_cursor is None


def test_starred_is_a_flag_view_across_folders(mailbox):
    a, b, c = receive(mailbox, subject="a"), receive(mailbox, subject="b"), receive(mailbox, subject="c")
    email_update(email=a, is_starred=True)
    email_update(email=b, is_starred=True, folder=Folder.ARCHIVE)
    email_update(email=c, is_starred=True, folder=Folder.TRASH)
    page = email_list(account=mailbox.account, mailbox=mailbox, folder="STARRED")
    assert {e.subject for e in page.items} == {"a", "b"}


@pytest.mark.parametrize("cursor", ["garbage", "eyJ2IjoxfQ", "", "x" * 500])
def test_bad_cursor_or_limit_is_invalid(mailbox, cursor):
    receive(mailbox)
    if cursor:
        with pytest.raises(Invalid) as err:
            email_list(account=mailbox.account, mailbox=mailbox, cursor=cursor)
        assert err.value.errors == {"cursor": [err.value.detail]}
    with pytest.raises(Invalid):
        email_list(account=mailbox.account, mailbox=mailbox, limit=0)


def test_threads_and_attachments_by_index(mailbox):
    first = receive(mailbox, subject="Plan", message_id="p1@x.example", attachments=[("plan.txt", "text/plain", b"step")])
    receive(mailbox, subject="Re: Plan", message_id="p2@x.example", in_reply_to="p1@x.example")
    page = thread_list(account=mailbox.account, mailbox=mailbox)
    assert len(page.items) == 1
    detail = thread_get(account=mailbox.account, thread_id=page.items[0].id)
    assert [e.subject for e in detail.emails] == ["Plan", "Re: Plan"]
    attachment = attachment_get(account=mailbox.account, email_id=first.id, index=0)
    assert attachment.filename == "plan.txt"
    with pytest.raises(NotFound):
        attachment_get(account=mailbox.account, email_id=first.id, index=1)


def test_outsider_gets_not_found_from_every_selector(mailbox, outsider):
    email = receive(mailbox, subject="Private", attachments=[("a.txt", "text/plain", b"x")])
    from mailboxes.store.search import email_search

    with pytest.raises(NotFound):
        email_list(account=outsider, mailbox=mailbox, folder="INBOX")
    with pytest.raises(NotFound):
        email_list(account=outsider, mailbox=mailbox.id, folder="INBOX")
    with pytest.raises(NotFound):
        email_get(account=outsider, email_id=email.id)
    with pytest.raises(NotFound):
        email_get(account=outsider, email_id="not-a-uuid")
    with pytest.raises(NotFound):
        thread_list(account=outsider, mailbox=mailbox)
    with pytest.raises(NotFound):
        thread_get(account=outsider, thread_id=email.thread_id)
    with pytest.raises(NotFound):
        attachment_get(account=outsider, email_id=email.id, index=0)
    with pytest.raises(NotFound):
        email_search(account=outsider, query="Private", mailbox=mailbox.id)
    assert email_search(account=outsider, query="Private").items == []
