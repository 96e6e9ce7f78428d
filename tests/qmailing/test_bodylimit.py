"""Every request body that reaches Django is bounded before Django reads it (core.bodylimit)."""

import asyncio

import pytest

from core.bodylimit import BodyLimit


def _scope(path="/mail/compose/", length=None):
    headers = [(b"host", b"localhost"), (b"content-type", b"multipart/form-data; boundary=x")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "scheme": "http", "server": ("localhost", 80), "client": ("127.0.0.1", 5000),
            "http_version": "1.1", "asgi": {"version": "3.0"}}


def _run(app, scope, chunks):
    sent, queue = [], list(chunks)

    async def receive():
        if queue:
            body = queue.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(queue)}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


class Recorder:
    """A stand-in for Django: reads the whole body, then answers 200 with how much it read."""

    def __init__(self):
        self.read = 0

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.read).encode()})


def test_a_declared_length_over_the_bound_is_refused_unread():
    inner = Recorder()
    sent = _run(BodyLimit(inner, limit=1000), _scope(length=5000), [b"x" * 5000])
    assert sent[0]["status"] == 413 and inner.read == 0
    assert b"QMAILING_WEB_MAX_BODY_BYTES" in sent[1]["body"]


def test_a_body_streaming_past_the_bound_is_cut_off_and_refused():
    inner = Recorder()
    sent = _run(BodyLimit(inner, limit=1000), _scope(), [b"x" * 600, b"x" * 600, b"x" * 600])
    assert [message.get("status") for message in sent if message["type"] == "http.response.start"] == [413]
    assert inner.read == 600  # Django saw the first chunk only, then a disconnect


def test_a_body_within_the_bound_goes_through_whole():
    inner = Recorder()
    sent = _run(BodyLimit(inner, limit=1000), _scope(length=900), [b"x" * 500, b"x" * 400])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"900"


@pytest.mark.django_db
def test_the_served_application_applies_it_to_every_django_path(settings):
    from qmailing.asgi import application

    settings.QMAILING_WEB_MAX_BODY_BYTES = 2048
    for path in ("/accounts/login/", "/mail/compose/", "/anymail/mailgun/inbound/"):
        sent = _run(application, _scope(path, length=10_000), [b"x" * 10_000])
        assert sent[0]["status"] == 413, path


def test_compose_refuses_attachments_over_the_cap_before_reading_them(client, owner, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    settings.QMAILING_OUTBOUND_MAX_ATTACHMENT_BYTES = 1000
    client.force_login(owner.users.get())
    files = [SimpleUploadedFile(f"part{n}.bin", b"x" * 600, content_type="application/octet-stream") for n in range(2)]
    response = client.post(reverse("mail:compose"), {"sender": str(owner.mailboxes.get().id), "to": "a@example.com",
                                                     "text": "hi", "attachments": files})
    assert response.status_code == 400 and "Attachments can total at most" in response.content.decode()
