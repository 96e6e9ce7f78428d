"""Subscriptions cannot multiply work: one per (session, mailbox), a cap per account, a fixed number of queries
per event whatever the number of subscribers; and every wait re-checks its token when it wakes."""

import asyncio
import threading
import time
from contextlib import contextmanager

import anyio
import pytest
from django.db import connections
from django.db.backends.utils import CursorWrapper
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from accounts.tokens import token_lookup, token_revoke
from agent.mcp.push import EventFeeds
from tests.api_helpers import token_for
from tests.agent.mcp.conftest import run
from tests.timing import wait_until_async, within
from tests.agent.mcp.test_resources import Notifications, _ingest_in_thread, _session, _subscribe, _uri

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


def test_a_hundred_uris_of_one_mailbox_are_one_subscription(mcp_url, owner, mailbox):
    from qmailing.asgi import mcp_endpoint

    feeds = mcp_endpoint.feeds
    notes = Notifications()

    async def scenario(client):
        for cursor in range(100):  # the attack: ?cursor=N made each URI new
            await _subscribe(client, _uri(mailbox, f"?cursor={cursor}"))
        held = feeds.listener_count(owner.pk)
        thread, _ = _ingest_in_thread(mailbox, "Once", delay=0)
        await notes.wait(5)
        await anyio.to_thread.run_sync(thread.join)
        await asyncio.sleep(0.5)  # a window for a second notification, which must not come (not a synchronisation)
        return held

    held = run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario, message_handler=notes))
    assert held == 1
    assert [uri for uri, _ in notes.received] == [_uri(mailbox, "?cursor=99")]  # one notification, the latest URI


def test_the_account_cap_spans_its_sessions(mcp_url, owner, outsider, mailbox, settings):
    settings.QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT = 2
    token = token_for(owner, scopes="email:read")

    async def nested(depth, client_errors):
        async def scenario(client):
            try:
                await _subscribe(client, _uri(mailbox))
            except MCPError as error:
                client_errors.append(error)
                return
            if depth < 3:
                await nested(depth + 1, client_errors)
        await _session(mcp_url, token, scenario)

    errors = []
    run(nested(1, errors))  # three sessions open at once, each following the same mailbox
    [error] = errors
    assert error.code == INVALID_REQUEST
    assert error.data["code"] == "too_many_subscriptions" and error.data["status"] == 429
    assert error.data["limit"] == 2

    foreign = _uri(outsider.mailboxes.get())

    async def other(client):
        await _subscribe(client, foreign)
        return True

    assert run(_session(mcp_url, token_for(outsider, scopes="email:read"), other))  # another account is unaffected


@contextmanager
def _queries_by_table():
    """Every SQL statement any thread runs in the block, as (thread name, sql)."""
    seen = []
    original = CursorWrapper.execute

    def execute(self, sql, params=None):
        seen.append((threading.current_thread().name, str(sql)))
        return original(self, sql, params)

    CursorWrapper.execute = execute
    try:
        yield seen
    finally:
        CursorWrapper.execute = original


def _one_event_with_listeners(owner, mailbox, count):
    """Queries the feed ran for one event with `count` listeners of the mailbox (all alive), and how many heard it."""
    token_id = token_lookup(token_for(owner, scopes="email:read")).pk
    heard = []

    async def scenario():
        feeds = EventFeeds()
        done = asyncio.Event()

        def callback():
            heard.append(1)
            if len(heard) == count:
                done.set()

        stops = [await feeds.listen(account_id=owner.pk, mailbox_id=mailbox.pk, token_id=token_id, callback=callback)
                 for _ in range(count)]
        with _queries_by_table() as seen:
            thread, _ = _ingest_in_thread(mailbox, "Fan-out", delay=0)
            await anyio.to_thread.run_sync(thread.join)
            with anyio.move_on_after(10):
                await done.wait()
        for stop in stops:
            stop()
        await feeds.close()
        return [sql for name, sql in seen if name != "ingest"]

    queries = run(scenario())
    connections.close_all()
    return queries, len(heard)


def test_one_event_costs_the_same_queries_for_one_listener_or_five_hundred(owner, mailbox, settings):
    settings.QMAILING_MCP_SUBSCRIPTIONS_PER_ACCOUNT = 500
    few, heard_few = _one_event_with_listeners(owner, mailbox, 1)
    many, heard_many = _one_event_with_listeners(owner, mailbox, 500)
    assert (heard_few, heard_many) == (1, 500)

    def on(queries, table):
        return sum(1 for sql in queries if table in sql)

    for table in ("oauth2_provider_accesstoken", "webhooks_event"):
        assert on(few, table) == on(many, table) == 1, (table, on(few, table), on(many, table))
    assert len(many) <= len(few) + 2  # polls of the account's cursor may differ by timing, nothing else


def test_a_listener_whose_token_is_revoked_ends_and_hears_nothing(owner, mailbox):
    plaintext = token_for(owner, scopes="email:read")
    token_id = token_lookup(plaintext).pk
    heard, ended = [], []

    async def scenario():
        feeds = EventFeeds()
        stop = await feeds.listen(account_id=owner.pk, mailbox_id=mailbox.pk, token_id=token_id,
                                  callback=lambda: heard.append(1), on_revoked=lambda: ended.append(1))
        await anyio.to_thread.run_sync(lambda: token_revoke(account=owner, token_id=token_id))
        thread, _ = _ingest_in_thread(mailbox, "After the revocation", delay=0)
        await anyio.to_thread.run_sync(thread.join)
        await wait_until_async(lambda: ended, 5, "the revoked listener ended")
        count = feeds.listener_count(owner.pk)
        stop()
        await feeds.close()
        return count

    assert run(scenario()) == 0
    assert heard == [] and ended == [1]
    connections.close_all()


def test_a_listen_stream_ends_when_its_token_is_revoked(mcp_url, owner, mailbox):
    token = token_for(owner, scopes="email:read")
    uri = _uri(mailbox)

    async def scenario(client):
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await anyio.to_thread.run_sync(lambda: token_revoke(account=owner, token_id=token_lookup(token).pk))
            thread, _ = _ingest_in_thread(mailbox, "After the revocation", delay=0.2)
            received = []
            with anyio.move_on_after(5):
                async for event in subscription:
                    received.append(event)
            await anyio.to_thread.run_sync(thread.join)
            return received

    try:
        received = run(_session(mcp_url, token, scenario, mode="2026-07-28"))
    except BaseException as error:  # the client may report the ended stream as an error: either way, nothing told
        received = []
        assert "updated" not in repr(error)
    assert received == []


def test_a_listen_stream_that_follows_nothing_ends_at_once(mcp_url, owner, outsider):
    foreign = _uri(outsider.mailboxes.get())

    async def scenario(client):
        async with client.listen(resource_subscriptions=[foreign]) as subscription:
            received = []
            with anyio.move_on_after(5) as scope:
                async for event in subscription:
                    received.append(event)
            return received, scope.cancelled_caught

    try:
        received, timed_out = run(_session(mcp_url, token_for(owner, scopes="email:read"), scenario, mode="2026-07-28"))
    except BaseException as error:  # the client may report the ended stream as an error
        assert "updated" not in repr(error)
        return
    assert received == [] and not timed_out  # the stream ended by itself, it did not hold a slot for 5 s


@pytest.mark.latency
def test_a_listen_stream_ends_after_revocation_even_when_no_mail_arrives(mcp_url, owner, mailbox, monkeypatch):
    from agent.mcp import push

    monkeypatch.setattr(push, "TOKEN_RECHECK_SECONDS", 0.5)
    token = token_for(owner, scopes="email:read")

    async def scenario(client):
        async with client.listen(resource_subscriptions=[_uri(mailbox)]) as subscription:
            await anyio.to_thread.run_sync(lambda: token_revoke(account=owner, token_id=token_lookup(token).pk))
            began = time.monotonic()
            with anyio.move_on_after(15) as scope:
                async for _ in subscription:
                    pass
            return time.monotonic() - began, scope.cancelled_caught

    try:
        seconds, timed_out = run(_session(mcp_url, token, scenario, mode="2026-07-28"))
    except BaseException as error:  # the ended stream reported as an error: it ended, which is the point
        assert "updated" not in repr(error)
        return
    assert not timed_out and seconds < within(10)
