"""qmailing_wait_for_events over MCP runs on the event loop (Operation.handler_async), not in a thread.

A thread per waiting agent would take every thread of the default executor (min(32, cores + 4)) for up to
25 s, and every other tool call would queue behind the waits.
"""

import asyncio
import threading
import time

import httpx2
import pytest
from django.db import connections
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mailboxes.inbound.ingest import email_ingest
from tests.api_helpers import token_for, waiting
from tests.mailboxes.inbound_helpers import make_message
from tests.agent.mcp.conftest import run
from tests.timing import wait_until, wait_until_async, within

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WAITERS = 10


async def _call(url, token, name, arguments):
    """One tool call on its own client; (result, seconds it took)."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client:
            began = time.monotonic()
            result = await client.call_tool(name, arguments)
            return result, time.monotonic() - began


@pytest.mark.latency
def test_concurrent_waits_do_not_delay_other_tool_calls(mcp_url, owner):
    token = token_for(owner)

    async def scenario():
        waits = [asyncio.create_task(_call(mcp_url, token, "qmailing_wait_for_events", {"timeout_seconds": 3}))
                 for _ in range(WAITERS)]
        await wait_until_async(lambda: waiting(owner) >= WAITERS, 20, "every wait in flight on the server")
        listed, took = await _call(mcp_url, token, "qmailing_list_mailboxes", {})
        still_waiting = sum(not task.done() for task in waits)
        return listed, took, still_waiting, await asyncio.gather(*waits)

    listed, took, still_waiting, waits = run(scenario())
    print(f"\nlist_mailboxes beside {WAITERS} waits: {took * 1000:.0f} ms")
    assert listed.is_error is False and listed.structured_content["items"]
    assert still_waiting == WAITERS
    assert took < within(0.5), took
    for result, seconds in waits:
        assert result.is_error is False and result.structured_content["events"] == []
        assert 2.5 < seconds < within(5)


@pytest.mark.latency
def test_a_wait_returns_within_a_second_of_an_event_from_another_thread(mcp_url, owner, dns_server):
    mailbox = owner.mailboxes.get()
    token = token_for(owner, scopes="email:read")
    stamp = {}
    owner.refresh_from_db()
    cursor = owner.event_cursor  # read on from here: the event counts even if it commits before the wait's first read

    def ingest():
        wait_until(lambda: waiting(owner), 20, "the wait in flight on the server")
        try:
            stamp["started"] = time.time()  # it commits before email_ingest returns: an upper bound below
            email_ingest(mailbox=mailbox, raw=make_message(subject="Wake up"))
        finally:
            connections.close_all()

    writer = threading.Thread(target=ingest)

    async def scenario():
        writer.start()
        result, _ = await _call(mcp_url, token, "qmailing_wait_for_events",
                                {"mailbox_id": str(mailbox.pk), "types": ["email.received"], "timeout_seconds": 10,
                                 "cursor": cursor})
        return result, time.time()

    result, returned = run(scenario())
    writer.join()
    assert result.is_error is False
    assert [e["payload"]["subject"] for e in result.structured_content["events"]] == ["Wake up"]
    print(f"\nwait_for_events returned at most {1000 * (returned - stamp['started']):.0f} ms after the commit")
    assert returned - stamp["started"] < within(1.0)
