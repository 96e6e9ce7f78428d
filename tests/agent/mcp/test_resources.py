"""The resource mailbox://{mailbox_id}/events over real HTTP with the SDK's client: template, read, gates,
and push (resources/subscribe on a session; subscriptions/listen on 2026-07-28), also across processes.
"""

import json
import os
import subprocess
import sys
import threading
import time
import warnings

import anyio
import httpx2
import pytest
from django.db import connection, connections
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST

from accounts.models import RequestLog
from accounts.request_log import request_log_flush
from mailboxes.inbound.ingest import email_ingest
from mailboxes.services import mailbox_create
from tests.api_helpers import token_for
from tests.conftest import ON_POSTGRES, ON_REDIS
from tests.mailboxes.inbound_helpers import make_message
from tests.agent.mcp.conftest import run
from tests.timing import wait_until, wait_until_async, within

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

UPDATED = "notifications/resources/updated"


def _uri(mailbox, query=""):
    return f"mailbox://{mailbox.pk}/events{query}"


@pytest.fixture
def other_mailbox(owner, verified_domain):
    """A second mailbox of the same account."""
    return mailbox_create(account=owner, domain=verified_domain, local_part="second")


async def _session(url, token, scenario, *, mode="legacy", message_handler=None):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode,
                          message_handler=message_handler) as client:
            return await scenario(client)


def _ingest_in_thread(mailbox, subject, *, delay):
    """email_ingest from another thread after `delay` seconds; returns (thread, stamp): the event commits
    between stamp["started"] and stamp["committed"] (time.time())."""
    stamp = {}

    def work():
        time.sleep(delay)
        try:
            stamp["started"] = time.time()
            email_ingest(mailbox=mailbox, raw=make_message(subject=subject))
            stamp["committed"] = time.time()
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="ingest")
    thread.start()
    return thread, stamp


def _latency(arrived, stamp):
    """An upper bound of commit → notification: from the moment the ingest began (it commits before it returns)."""
    return arrived - stamp["started"]


def _layer():
    from django.conf import settings

    return "Redis channel layer" if settings.REDIS_URL else "embedded: in-memory layer + 0.5 s poll"


class Notifications:
    """The client's message handler: every resources/updated notification, with the time it arrived."""

    def __init__(self):
        self.received = []  # (uri, time.time())
        self.arrived = anyio.Event()

    async def __call__(self, message):
        if getattr(message, "method", None) == UPDATED:
            self.received.append((str(message.params.uri), time.time()))
            self.arrived.set()

    async def wait(self, timeout):
        with anyio.move_on_after(timeout):
            await self.arrived.wait()
        self.arrived = anyio.Event()


async def _get_stream_open(account):
    """Until the server holds a GET stream of one of the account's sessions: the readiness signal for a test that
    makes an event to be notified of (a notification sent before the stream opens goes nowhere)."""
    from mcp.server.streamable_http import GET_STREAM_KEY

    from qmailing.asgi import mcp_endpoint

    manager = mcp_endpoint.runtime.manager

    def stream_open():
        for session_id, holder in list(manager.owners.items()):
            transport = manager._server_instances.get(session_id)
            if str(holder.account_id) == str(account.pk) and transport is not None \
                    and GET_STREAM_KEY in transport._request_streams:
                return True
        return False

    await wait_until_async(stream_open, 10, "the session's GET stream open on the server")


async def _subscribe(client, uri):
    with warnings.catch_warnings():  # deprecated only for 2026-07-28; this is a handshake session
        warnings.simplefilter("ignore")
        return await client.subscribe_resource(uri)


async def _unsubscribe(client, uri):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return await client.unsubscribe_resource(uri)


# --- Template, list, read, gates.

@pytest.mark.parametrize("mode", ["legacy", "auto"])  # auto: server/discover, then 2026-07-28
def test_the_template_is_listed_and_resources_subscribe_is_advertised(mcp_url, owner, mode):
    async def scenario(client):
        assert (client.protocol_version == "2026-07-28") == (mode == "auto")
        return await client.list_resource_templates(), client.server_capabilities

    templates, capabilities = run(_session(mcp_url, token_for(owner), scenario, mode=mode))
    [template] = templates.resource_templates
    assert template.uri_template == "mailbox://{mailbox_id}/events"
    assert template.name and template.title and template.mime_type == "application/json"
    assert "untrusted" in template.description
    assert capabilities.resources.subscribe is True
    assert not capabilities.resources.list_changed  # never published (the resource list does not change)
    assert capabilities.tools.list_changed  # the tool list follows the token's grants (test_tool_list_changed)


def test_resources_list_has_the_callers_mailboxes(mcp_url, owner, mailbox):
    async def scenario(client):
        return await client.list_resources()

    listed = run(_session(mcp_url, token_for(owner), scenario))
    assert [str(resource.uri) for resource in listed.resources] == [_uri(mailbox)]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_read_returns_the_mailboxs_latest_events(mcp_url, owner, mailbox, other_mailbox, dns_server, mode):
    email_ingest(mailbox=mailbox, raw=make_message(subject="First"))
    email_ingest(mailbox=other_mailbox, raw=make_message(subject="Elsewhere", to=other_mailbox.address))
    email_ingest(mailbox=mailbox, raw=make_message(subject="Second"))
    token = token_for(owner, scopes="email:read")

    async def scenario(client):
        latest = await client.read_resource(_uri(mailbox))
        body = json.loads(latest.contents[0].text)
        after = await client.read_resource(_uri(mailbox, f"?cursor={body['events'][0]['cursor']}"))
        return latest, body, json.loads(after.contents[0].text)

    latest, body, after = run(_session(mcp_url, token, scenario, mode=mode))
    assert latest.contents[0].mime_type == "application/json" and str(latest.contents[0].uri) == _uri(mailbox)
    assert set(body) == {"mailboxId", "cursor", "nextCursor", "events"}
    assert body["mailboxId"] == str(mailbox.pk)
    received = [e for e in body["events"] if e["type"] == "email.received"]
    assert [e["payload"]["subject"] for e in received] == ["First", "Second"]
    assert {e["mailbox_id"] for e in body["events"]} == {str(mailbox.pk)}
    assert set(body["events"][0]) == {"id", "cursor", "type", "mailbox_id", "created_at", "payload"}  # EventOut
    assert body["cursor"] < body["events"][0]["cursor"] and body["nextCursor"] >= body["events"][-1]["cursor"]
    assert [e["payload"].get("subject") for e in after["events"]] == \
        [e["payload"].get("subject") for e in body["events"][1:]]
    assert after["nextCursor"] == body["nextCursor"]
    # One metered call per read, logged like a REST call.
    request_log_flush()
    assert list(RequestLog.objects.filter(account=owner).values_list("operation", "status")) == \
        [("resources/read", 200)] * 2


def _read_error(url, token, uri):
    async def scenario(client):
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        return caught.value

    return run(_session(url, token, scenario))


def test_another_accounts_mailbox_is_refused_like_a_missing_one(mcp_url, owner, outsider):
    token = token_for(owner, scopes="email:read")
    foreign = _read_error(mcp_url, token, _uri(outsider.mailboxes.get()))
    missing = _read_error(mcp_url, token, "mailbox://00000000-0000-4000-8000-000000000000/events")
    assert foreign.code == missing.code == INVALID_PARAMS
    assert foreign.message == missing.message
    assert foreign.data["status"] == missing.data["status"] == 404
    malformed = _read_error(mcp_url, token, "mailbox://not-a-uuid/events")
    assert malformed.code == INVALID_PARAMS and malformed.data["status"] == 404


def test_a_token_limited_to_other_mailboxes_lists_reads_and_follows_only_them(mcp_url, owner, mailbox, other_mailbox):
    token = token_for(owner, scopes="email:read", mailbox_ids=[other_mailbox.pk])
    outside = _read_error(mcp_url, token, _uri(mailbox))
    missing = _read_error(mcp_url, token, "mailbox://00000000-0000-4000-8000-000000000000/events")
    assert (outside.code, outside.message, outside.data["code"]) == (missing.code, missing.message, "not_found")

    async def scenario(client):
        listed = await client.list_resources()
        read = await client.read_resource(_uri(other_mailbox))
        with pytest.raises(MCPError) as refused:
            await _subscribe(client, _uri(mailbox))
        await _subscribe(client, _uri(other_mailbox))
        return listed, read, refused.value

    listed, read, refused = run(_session(mcp_url, token, scenario))
    assert [str(resource.uri) for resource in listed.resources] == [_uri(other_mailbox)]
    assert json.loads(read.contents[0].text)["mailboxId"] == str(other_mailbox.pk)
    assert refused.code == INVALID_PARAMS and refused.data["code"] == "not_found"

    async def listen(client):
        async with client.listen(resource_subscriptions=[_uri(mailbox), _uri(other_mailbox)]) as subscription:
            return subscription.honored.resource_subscriptions

    assert run(_session(mcp_url, token, listen, mode="2026-07-28")) == [_uri(other_mailbox)]


def test_a_token_without_email_read_is_refused(mcp_url, owner, mailbox):
    error = _read_error(mcp_url, token_for(owner, scopes="mailbox:read"), _uri(mailbox))
    assert error.code == INVALID_REQUEST
    assert error.data["code"] == "insufficient_scope" and error.data["requiredScopes"] == ["email:read"]


def test_a_bad_cursor_is_invalid_params(mcp_url, owner, mailbox):
    error = _read_error(mcp_url, token_for(owner, scopes="email:read"), _uri(mailbox, "?cursor=abc"))
    assert error.code == INVALID_PARAMS and error.data["code"] == "validation_error"


# --- Push on a session (resources/subscribe).

@pytest.mark.latency
def test_subscribe_notifies_within_a_second_only_for_that_mailbox(mcp_url, owner, mailbox, other_mailbox,
                                                                     dns_server, record_property):
    token = token_for(owner, scopes="email:read")
    notes = Notifications()
    uri = _uri(mailbox)

    async def scenario(client):
        await _subscribe(client, uri)
        await _get_stream_open(owner)  # the client opens its GET stream right after the handshake
        # An event of ANOTHER mailbox of the same account: no notification.
        thread, _ = _ingest_in_thread(other_mailbox, "Not this one", delay=0)
        await anyio.to_thread.run_sync(thread.join)
        await notes.wait(1.5)
        assert notes.received == []
        # An event of the subscribed mailbox: a notification within a second.
        thread, stamp = _ingest_in_thread(mailbox, "This one", delay=0.2)
        await notes.wait(5)
        await anyio.to_thread.run_sync(thread.join)
        assert [u for u, _ in notes.received] == [uri]
        latency = _latency(notes.received[0][1], stamp)
        # After unsubscribe: nothing.
        await _unsubscribe(client, uri)
        thread, _ = _ingest_in_thread(mailbox, "After unsubscribe", delay=0)
        await anyio.to_thread.run_sync(thread.join)
        await notes.wait(1.5)
        assert len(notes.received) == 1
        return latency

    latency = run(_session(mcp_url, token, scenario, message_handler=notes))
    record_property("notification_latency_s", latency)
    print(f"\nresources/updated, event from another thread ({_layer()}): at most {latency * 1000:.0f} ms")
    assert latency < within(1.0), latency


def test_subscriptions_end_with_their_session(mcp_url, owner, mailbox, other_mailbox):
    from qmailing.asgi import mcp_endpoint

    feeds = mcp_endpoint.feeds
    before = feeds.task_count

    async def scenario(client):
        await _subscribe(client, _uri(mailbox))
        await _subscribe(client, _uri(other_mailbox))
        await _subscribe(client, _uri(mailbox))  # twice: one subscription
        return feeds.task_count

    during = run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario))
    assert during == before + 3  # one follower for the account, one sender per URI
    # the client's DELETE ended the session, and its tasks with it
    wait_until(lambda: feeds.task_count == before, 5, f"the session's feed tasks ended ({feeds.task_count} left)")


def test_subscribing_to_a_foreign_mailbox_is_refused(mcp_url, owner, outsider):
    foreign = _uri(outsider.mailboxes.get())

    async def scenario(client):
        with pytest.raises(MCPError) as caught:
            await _subscribe(client, foreign)
        return caught.value

    error = run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario))
    assert error.code == INVALID_PARAMS and error.data["status"] == 404


# --- 2026-07-28: subscriptions/listen.

@pytest.mark.latency
def test_listen_on_2026_07_28_notifies_within_a_second(mcp_url, owner, mailbox, outsider, dns_server):
    token = token_for(owner, scopes="email:read")
    uri, foreign = _uri(mailbox), _uri(outsider.mailboxes.get())

    async def scenario(client):
        async with client.listen(resource_subscriptions=[uri, foreign]) as subscription:
            honored = subscription.honored.resource_subscriptions
            thread, stamp = _ingest_in_thread(mailbox, "Listen", delay=0.2)
            event = None
            with anyio.move_on_after(5):
                event = await subscription.__anext__()
            arrived = time.time()
            await anyio.to_thread.run_sync(thread.join)
            return honored, event, _latency(arrived, stamp)

    from qmailing.asgi import mcp_endpoint

    before = mcp_endpoint.feeds.task_count
    honored, event, latency = run(_session(mcp_url, token, scenario, mode="2026-07-28"))
    wait_until(lambda: mcp_endpoint.feeds.task_count == before, 5, "the stream closed: its feed ended")
    print(f"\nsubscriptions/listen, event from another thread ({_layer()}): at most {latency * 1000:.0f} ms")
    assert honored == [uri]  # the foreign mailbox is not honored
    assert event is not None and event.uri == uri
    assert latency < within(1.0), latency


# --- Across processes: the embedded default (SQLite file, in-memory layer: the poll finds it) and Redis.

def _writer_script(mailbox):
    return (
        "import sys, time, django; django.setup(); sys.stdin.readline()  # go: the subscriber is listening\n"
        "from mailboxes.models import Mailbox; from mailboxes.inbound.ingest import email_ingest\n"
        "from tests.mailboxes.inbound_helpers import make_message\n"
        f"box = Mailbox.objects.get(pk='{mailbox.pk}'); raw = make_message(subject='From afar')\n"
        "started = time.time(); email_ingest(mailbox=box, raw=raw)\n"
        "print(started, time.time(), flush=True)\n"
    )


async def _subscribe_and_run_writer(client, notes, uri, env, script, account):
    await _subscribe(client, uri)
    writer = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        await _get_stream_open(account)  # a notification sent before the stream is open goes nowhere
        writer.stdin.write("go\n")
        writer.stdin.flush()
        await notes.wait(20)
        output = await anyio.to_thread.run_sync(lambda: writer.communicate(timeout=30)[0])
    finally:
        writer.kill()
    started, ended = (float(value) for value in output.split())
    return started, ended  # the event committed in between


def _report(notes, written, how, record_property):
    """The latency's bounds (the commit is somewhere in the ingest): asserts the upper one, prints both."""
    started, ended = written
    arrived = notes.received[0][1]
    record_property("notification_latency_s", arrived - started)
    print(f"\nresources/updated, event from another process ({how}): between "
          f"{max(0.0, arrived - ended) * 1000:.0f} and {(arrived - started) * 1000:.0f} ms after the commit")
    assert arrived - started < within(1.0), arrived - started


@pytest.mark.skipif(ON_POSTGRES or ON_REDIS, reason="the embedded default: SQLite and no Redis")
@pytest.mark.latency
def test_embedded_an_event_written_by_another_process_is_found_by_the_poll(mcp_url, owner, mailbox, record_property):
    """The SMTP server and the worker are other processes; on the embedded default no announcement reaches
    this one, and the feed's 0.5 s poll of the log (events.stream.POLL_SECONDS_EMBEDDED) finds their events."""
    env = {**os.environ, "QMAILING_SQLITE_PATH": connection.settings_dict["NAME"],
           "DJANGO_SETTINGS_MODULE": "qmailing.settings"}
    notes = Notifications()
    uri = _uri(mailbox)
    written = run(_session(mcp_url, token_for(owner, scopes="email:read"),
                           lambda client: _subscribe_and_run_writer(client, notes, uri, env, _writer_script(mailbox), owner),
                           message_handler=notes))
    assert [u for u, _ in notes.received] == [uri]
    _report(notes, written, "embedded poll", record_property)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.latency
def test_an_event_written_by_another_process_notifies_the_subscriber(mcp_url, owner, mailbox, record_property):
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "qmailing.settings"}
    notes = Notifications()
    uri = _uri(mailbox)
    written = run(_session(mcp_url, token_for(owner, scopes="email:read"),
                           lambda client: _subscribe_and_run_writer(client, notes, uri, env, _writer_script(mailbox), owner),
                           message_handler=notes))
    assert [u for u, _ in notes.received] == [uri]
    _report(notes, written, "Redis", record_property)  # well under the 5 s poll with Redis: the announcement


# --- Metering: a read is one call, as REST; subscribing is not.

def test_a_read_is_metered_and_throttled_like_a_call(mcp_url, owner, mailbox, settings):
    from tests.agent.mcp.conftest import rpc
    from tests.agent.mcp.test_transport import _modern_meta

    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 2
    token = token_for(owner, scopes="email:read")
    read = {"jsonrpc": "2.0", "id": 3, "method": "resources/read",
            "params": {"uri": _uri(mailbox), "_meta": _modern_meta()}}
    named = {"Mcp-Name": _uri(mailbox)}  # 2026-07-28 routes resources/read on the URI header too
    for _ in range(2):
        response, reply = rpc(mcp_url, read, token=token, version="2026-07-28", headers=named)
        assert response.status_code == 200 and "contents" in reply["result"], response.text
        assert response.headers["X-RateLimit-Limit"] == "2"
    templates = {"jsonrpc": "2.0", "id": 4, "method": "resources/templates/list", "params": {"_meta": _modern_meta()}}
    assert rpc(mcp_url, templates, token=token, version="2026-07-28")[0].status_code == 200  # not metered
    response, _ = rpc(mcp_url, read, token=token, version="2026-07-28", headers=named)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    request_log_flush()
    assert sorted(RequestLog.objects.filter(account=owner).values_list("operation", "status")) == \
        [("resources/read", 200), ("resources/read", 200), ("resources/read", 429)]


def test_a_plan_without_the_mail_tools_cannot_read(mcp_url, free_account):
    mailbox = free_account.mailboxes.get()
    error = _read_error(mcp_url, token_for(free_account, scopes="email:read"), _uri(mailbox))
    assert error.code == INVALID_REQUEST and error.data["code"] == "plan_required"
    request_log_flush()
    assert list(RequestLog.objects.filter(account=free_account).values_list("status", flat=True)) == [402]


def test_subscribing_is_not_metered(mcp_url, owner, mailbox):
    async def scenario(client):
        await _subscribe(client, _uri(mailbox))
        await _unsubscribe(client, _uri(mailbox))

    run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario))
    request_log_flush()
    assert not RequestLog.objects.filter(account=owner).exists()


# --- The whole path: mail delivered over SMTP to the real SMTP server process, pushed to a subscriber.

def _database_env():
    if ON_POSTGRES:
        database = connection.settings_dict
        return {"DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"}
    return {"QMAILING_SQLITE_PATH": connection.settings_dict["NAME"]}


@pytest.mark.latency
def test_mail_delivered_to_the_smtp_server_process_notifies_the_subscriber_and_is_readable(mcp_url, owner, mailbox,
                                                                                           record_property):
    """`manage.py run_smtp` in a process of its own (what run_all starts) stores the message; the subscriber
    hears of it (through Redis with REDIS_URL, by the log poll on the embedded default) and reads the event."""
    import smtplib

    from tests.faults import free_port, stop_process, wait_for_port

    port = free_port()
    env = {**os.environ, **_database_env(), "DJANGO_SETTINGS_MODULE": "qmailing.settings",
           "QMAILING_SMTP_HOST": "127.0.0.1", "QMAILING_SMTP_PORT": str(port)}
    smtp = subprocess.Popen([sys.executable, "manage.py", "run_smtp"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    notes = Notifications()
    uri = _uri(mailbox)

    def send_mail():
        wait_for_port(port, smtp, what="run_smtp")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("ada@example.com", [mailbox.address],
                            make_message(subject="Over the wire", to=mailbox.address))
        return time.time()

    async def scenario(client):
        await _subscribe(client, uri)
        await _get_stream_open(owner)  # a notification before the session's GET stream opens would be dropped
        sent = await anyio.to_thread.run_sync(send_mail)
        await notes.wait(20)
        read = await client.read_resource(uri)
        return sent, json.loads(read.contents[0].text)

    try:
        sent, content = run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario, message_handler=notes))
    finally:
        stop_process(smtp, timeout=20)
    assert [u for u, _ in notes.received] == [uri]
    latency = notes.received[0][1] - sent
    record_property("smtp_notification_latency_s", latency)
    print(f"\nresources/updated after SMTP delivery to the run_smtp process: {latency * 1000:.0f} ms after QUIT")
    assert latency < within(1.0), latency
    received = [e for e in content["events"] if e["type"] == "email.received"]
    assert received and received[-1]["payload"]["subject"] == "Over the wire"


def test_a_revoked_token_hears_nothing_more_from_its_subscription(mcp_url, owner, mailbox):
    from accounts.tokens import token_lookup, token_revoke

    token = token_for(owner, scopes="email:read")
    notes = Notifications()
    uri = _uri(mailbox)

    async def scenario(client):
        await _subscribe(client, uri)
        await _get_stream_open(owner)
        thread, _ = _ingest_in_thread(mailbox, "Before the revocation", delay=0)
        await notes.wait(5)
        await anyio.to_thread.run_sync(thread.join)
        assert len(notes.received) == 1
        await anyio.to_thread.run_sync(lambda: token_revoke(account=owner, token_id=token_lookup(token).pk))
        thread, _ = _ingest_in_thread(mailbox, "After the revocation", delay=0)
        await anyio.to_thread.run_sync(thread.join)
        await notes.wait(2)
        assert len(notes.received) == 1  # not even "something arrived" reaches a revoked client

    run(_session(mcp_url, token, scenario, message_handler=notes))
