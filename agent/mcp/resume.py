"""Resumable SSE streams (SEP-1699): a small event store for each MCP session.

With an event store the SDK opens every SSE stream of a 2025-11-25 session with a priming event (an id, empty
data and a `retry` field) and gives each message an id, so a client whose connection drops reconnects with
`Last-Event-ID` and gets what it missed. The store is one per session (agent.mcp.sessions gives each new
session its own), never shared: stream ids are the client's request ids, which every session reuses, so a
shared store could replay one session's messages to another.

Memory is bounded: a session keeps its last MAX_EVENTS events and at most MAX_BYTES of their messages, oldest
dropped first (an idle session costs about 40 KB besides). A client that reconnects after an event that is no
longer kept gets an empty stream, as from a server without resumability, and calls again.
"""

from collections import OrderedDict
from itertools import count

from mcp.server.streamable_http import EventMessage, EventStore

RETRY_MILLISECONDS = 2000  # the `retry` a client waits before it reconnects a dropped stream
MAX_EVENTS = 64
MAX_BYTES = 256 * 1024


class SessionEventStore(EventStore):
    """The recent events of one session's streams, in order: event id -> (stream id, message or None)."""

    def __init__(self, *, max_events=MAX_EVENTS, max_bytes=MAX_BYTES):
        self.max_events, self.max_bytes = max_events, max_bytes
        self.events = OrderedDict()
        self.sizes = {}
        self.bytes = 0
        self._ids = count(1)

    async def store_event(self, stream_id, message):
        event_id = str(next(self._ids))
        size = len(message.model_dump_json(by_alias=True, exclude_unset=True)) if message is not None else 0
        if size > self.max_bytes:
            message, size = None, 0  # too large to keep: its id still orders the stream, nothing is replayed
        self.events[event_id] = (stream_id, message)
        self.sizes[event_id] = size
        self.bytes += size
        while len(self.events) > self.max_events or self.bytes > self.max_bytes:
            dropped, _ = self.events.popitem(last=False)
            self.bytes -= self.sizes.pop(dropped)
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        """Send the kept messages of `last_event_id`'s stream that came after it; that stream's id, or None when
        the event is unknown (never stored here, or dropped)."""
        if last_event_id not in self.events:
            return None
        stream_id, _ = self.events[last_event_id]
        after = False
        for event_id, (event_stream, message) in list(self.events.items()):
            if after and event_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id
