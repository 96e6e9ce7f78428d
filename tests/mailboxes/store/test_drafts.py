"""Drafts: prepared by an agent with email:write, sent only by someone with email:send, now or at a set time."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.inbound.ingest import email_ingest
from mailboxes.models import Draft, DraftAttachment, Email, Folder
from mailboxes.store.drafts import draft_create, draft_send, draft_update, drafts_send_due
from core.errors import Conflict, Invalid, NotFound
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.mailboxes.inbound_helpers import make_message


@pytest.fixture
def op():
    return registry().__getitem__


@pytest.fixture
def recipient(outsider):
    return outsider.mailboxes.get()


def _b64(data):
    return base64.b64encode(data).decode()


def test_an_agent_without_send_prepares_a_reply_that_only_a_sender_can_send(client, owner, mailbox, op):
    question = email_ingest(mailbox=mailbox, raw=make_message(subject="Lunch on Thursday?", message_id="q1@example.com",
                                                              sender="Ada <ada@example.com>"))
    drafter = token_for(owner, scopes="email:read email:write", client="Claude Desktop")
    created = call(client, op("qmailing_create_draft"), token=drafter, args={
        "mailbox_id": mailbox.id, "reply_to_email_id": question.id, "text": "Thursday works for me."})
    assert created.status_code == 201, created.content
    draft = created.json()
    assert draft["to"] == ["ada@example.com"] and draft["subject"] == "Re: Lunch on Thursday?"
    assert draft["status"] == "draft" and draft["created_via"] == "Agent: Claude Desktop"
    assert draft["reply_to_email_id"] == str(question.id)
    # Nothing left the account; the drafter cannot send it.
    assert not Email.objects.filter(folder=Folder.SENT).exists()
    refused = call(client, op("qmailing_send_draft"), token=drafter, args={"draft_id": draft["id"]})
    assert (refused.status_code, refused.json()["requiredScopes"]) == (403, ["email:send"])
    listed = call(client, op("qmailing_list_drafts"), token=drafter, args={"mailbox_id": mailbox.id}).json()
    assert [item["id"] for item in listed["items"]] == [draft["id"]] and listed["next_cursor"] is None

    sender = token_for(owner, scopes="email:send", client="Dashboard helper")
    sent = call(client, op("qmailing_send_draft"), token=sender, args={"draft_id": draft["id"]})
    assert sent.status_code == 200, sent.content
    body = sent.json()
    assert body["status"] == "sent" and body["draft"] is None and body["email"]["folder"] == "SENT"
    copy = Email.objects.get(pk=body["email"]["id"])
    assert copy.in_reply_to == "q1@example.com" and copy.thread_id == question.thread_id
    assert not Draft.objects.filter(pk=draft["id"]).exists()
    assert call(client, op("qmailing_get_draft"), token=drafter, args={"draft_id": draft["id"]}).status_code == 404


def test_update_replaces_only_what_is_given_and_attachments_as_a_whole(client, owner, mailbox, op,
                                                                        django_capture_on_commit_callbacks):
    token = token_for(owner, scopes="email:write")
    created = call(client, op("qmailing_create_draft"), token=token, args={
        "mailbox_id": mailbox.id, "to": ["Bob <bob@example.org>"], "subject": "Plan", "text": "v1",
        "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content_base64": _b64(b"one")}]}).json()
    first_file = DraftAttachment.objects.get(draft_id=created["id"]).file.name
    with django_capture_on_commit_callbacks(execute=True):
        updated = call(client, op("qmailing_update_draft"), token=token, args={
            "draft_id": created["id"], "text": "v2",
            "attachments": [{"filename": "b.pdf", "content_type": "application/pdf", "content_base64": _b64(b"%PDF-two")}]})
    assert updated.status_code == 200, updated.content
    body = updated.json()
    assert (body["to"], body["subject"], body["text"]) == (["Bob <bob@example.org>"], "Plan", "v2")
    assert [(a["filename"], a["size"]) for a in body["attachments"]] == [("b.pdf", 8)]
    storage = DraftAttachment._meta.get_field("file").storage
    assert not storage.exists(first_file)
    cleared = call(client, op("qmailing_update_draft"), token=token, args={"draft_id": created["id"], "attachments": []}).json()
    assert cleared["attachments"] == [] and cleared["has_attachments"] is False


def test_bad_recipients_are_named_when_saved(owner, mailbox):
    with pytest.raises(Invalid) as error:
        draft_create(account=owner, mailbox=mailbox, to=["not an address"])
    assert "to" in error.value.errors
    with pytest.raises(Invalid):
        draft_create(account=owner, mailbox=mailbox, subject="two\r\nBcc: victim@example.org")


def test_a_draft_without_recipients_is_not_sent(owner, mailbox):
    draft = draft_create(account=owner, mailbox=mailbox, text="Still thinking.")
    with pytest.raises(Conflict) as error:
        draft_send(draft=draft)
    assert error.value.code == "draft_incomplete"


def test_another_accounts_mailbox_email_and_draft_are_not_found(owner, outsider, mailbox):
    theirs = outsider.mailboxes.get()
    with pytest.raises(NotFound):
        draft_create(account=owner, mailbox=theirs, to=["a@example.org"])
    foreign_mail = email_ingest(mailbox=theirs, raw=make_message())
    with pytest.raises(NotFound):
        draft_create(account=owner, mailbox=mailbox, reply_to_email_id=foreign_mail.id)


def test_scheduled_draft_goes_out_once_when_due(owner, mailbox, recipient, django_capture_on_commit_callbacks):
    draft = draft_create(account=owner, mailbox=mailbox, to=[recipient.address], subject="Later", text="Hello later")
    send_at = timezone.now() + timedelta(hours=2)
    scheduled = draft_send(draft=draft, send_at=send_at)
    assert scheduled.status == Draft.Status.SCHEDULED and scheduled.send_at == send_at
    assert drafts_send_due(now=send_at - timedelta(seconds=1)) == 0
    assert drafts_send_due(now=send_at) == 1
    assert drafts_send_due(now=send_at) == 0  # a second run finds nothing: sent once
    assert Email.objects.filter(mailbox=recipient, subject="Later").count() == 1
    assert not Draft.objects.filter(pk=draft.pk).exists()


def test_editing_a_scheduled_draft_cancels_the_schedule(owner, mailbox):
    draft = draft_create(account=owner, mailbox=mailbox, to=["a@example.org"], text="x")
    draft_send(draft=draft, send_at=timezone.now() + timedelta(minutes=5))
    edited = draft_update(draft=draft, text="y")
    assert (edited.status, edited.send_at) == (Draft.Status.DRAFT, None)
    assert drafts_send_due(now=timezone.now() + timedelta(hours=1)) == 0


def test_a_scheduled_send_that_fails_is_marked_with_the_reason(owner, mailbox):
    draft = draft_create(account=owner, mailbox=mailbox, to=["a@example.org"], text="x")
    draft_send(draft=draft, send_at=timezone.now() + timedelta(minutes=5))
    mailbox.status = mailbox.Status.SUSPENDED
    mailbox.save(update_fields=["status"])
    assert drafts_send_due(now=timezone.now() + timedelta(minutes=10)) == 0
    draft.refresh_from_db()
    assert draft.status == Draft.Status.FAILED and "suspended" in draft.error


def test_schedule_times_are_checked(client, owner, mailbox, op):
    token = token_for(owner, scopes="email:write email:send")
    draft = draft_create(account=owner, mailbox=mailbox, to=["a@example.org"], text="x")
    for send_at, fragment in (("2001-01-01T00:00:00Z", "past"), ("2999-01-01T00:00:00Z", "days ahead"),
                              ("2030-01-01T00:00:00", "time zone")):
        response = call(client, op("qmailing_send_draft"), token=token, args={"draft_id": draft.id, "send_at": send_at})
        assert response.status_code == 400 and fragment in response.json()["detail"], response.content
    later = (timezone.now() + timedelta(days=1)).isoformat()
    response = call(client, op("qmailing_send_draft"), token=token, args={"draft_id": draft.id, "send_at": later})
    assert response.status_code == 200 and response.json()["status"] == "scheduled"
    assert response.json()["draft"]["send_at"] is not None


def test_the_draft_limit_is_enforced(owner, mailbox, settings):
    settings.QMAILING_MAX_DRAFTS_PER_ACCOUNT = 2
    draft_create(account=owner, mailbox=mailbox)
    draft_create(account=owner, mailbox=mailbox)
    with pytest.raises(Conflict) as error:
        draft_create(account=owner, mailbox=mailbox)
    assert error.value.code == "draft_limit_reached"


def test_delete_removes_the_draft_and_its_files(client, owner, mailbox, op, django_capture_on_commit_callbacks):
    token = token_for(owner, scopes="email:write")
    created = call(client, op("qmailing_create_draft"), token=token, args={
        "mailbox_id": mailbox.id, "attachments": [{"filename": "a.txt", "content_base64": _b64(b"one")}]}).json()
    name = DraftAttachment.objects.get(draft_id=created["id"]).file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = call(client, op("qmailing_delete_draft"), token=token, args={"draft_id": created["id"]})
    assert response.status_code == 200 and response.json() == {"id": created["id"], "deleted": True}
    assert not DraftAttachment._meta.get_field("file").storage.exists(name)
    assert call(client, op("qmailing_delete_draft"), token=token, args={"draft_id": created["id"]}).status_code == 404
