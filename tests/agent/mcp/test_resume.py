"""agent.mcp.resume: each session's SSE event store keeps its recent events in order, within its bounds."""

import asyncio

import mcp_types as types

from agent.mcp.resume import SessionEventStore


def _message(n, size=10):
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"n": n, "pad": "x" * size})


def _replayed(store, after):
    sent = []

    async def collect(event):
        sent.append((event.event_id, event.message.params["n"]))

    stream = asyncio.run(store.replay_events_after(after, collect))
    return stream, sent


def test_replays_only_later_events_of_the_same_stream():
    store = SessionEventStore()
    ids = [asyncio.run(store.store_event(stream, message)) for stream, message in
           [("a", None), ("a", _message(1)), ("b", _message(2)), ("a", _message(3))]]
    assert _replayed(store, ids[0]) == ("a", [(ids[1], 1), (ids[3], 3)])  # after the priming event, without b's
    assert _replayed(store, ids[3]) == ("a", [])


def test_oldest_events_go_first_at_the_count_and_byte_bounds():
    store = SessionEventStore(max_events=3, max_bytes=10_000)
    ids = [asyncio.run(store.store_event("a", _message(n))) for n in range(5)]
    assert list(store.events) == ids[2:]
    assert _replayed(store, ids[0]) == (None, [])  # dropped: nothing to resume from

    store = SessionEventStore(max_events=100, max_bytes=1_000)
    ids = [asyncio.run(store.store_event("a", _message(n, size=300))) for n in range(5)]
    assert 0 < store.bytes <= 1_000 and list(store.events) == ids[-len(store.events):] and len(store.events) < 5


def test_a_message_larger_than_the_budget_is_not_kept():
    store = SessionEventStore(max_events=10, max_bytes=500)
    first = asyncio.run(store.store_event("a", None))
    asyncio.run(store.store_event("a", _message(1, size=2_000)))
    assert store.bytes == 0
    assert _replayed(store, first) == ("a", [])
