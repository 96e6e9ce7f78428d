"""Outbound header caps: a huge To header costs a bounded time and is refused for good, not re-parsed per copy."""

import time

import pytest

from mailboxes.outbound.composition import MAX_HEADER_BLOCK_BYTES
from mailboxes.outbound.relay import HeadersTooLarge, permanent_failure, relay_send
from tests.timing import within


def _message(addresses):
    to = ",\r\n ".join(f"User {i} <user{i}@crowd.example>" for i in range(addresses))  # folded, as MTAs send it
    return (f"From: someone@sender.example\r\nTo: {to}\r\nSubject: crowd\r\n\r\nhello\r\n").encode()


@pytest.mark.parametrize("addresses", [10_000, 30_000])
@pytest.mark.latency
def test_a_header_block_over_the_cap_is_refused_at_once_and_for_good(smtp_relay, addresses):
    raw = _message(addresses)
    assert len(raw) > MAX_HEADER_BLOCK_BYTES
    started = time.monotonic()
    with pytest.raises(HeadersTooLarge) as refused:
        relay_send(raw=raw, envelope_from="fwd@brand.example", recipients=["target@elsewhere.example"])
    assert time.monotonic() - started < within(0.5)
    assert permanent_failure(refused.value) and not smtp_relay.messages


@pytest.mark.latency
def test_a_large_header_under_the_cap_is_relayed_in_linear_time(smtp_relay):
    raw = _message(2_500)
    assert len(raw) < MAX_HEADER_BLOCK_BYTES
    started = time.monotonic()
    relay_send(raw=raw, envelope_from="fwd@brand.example", recipients=["user7@crowd.example", "hidden@else.example"])
    assert time.monotonic() - started < within(1.5)
    [envelope] = smtp_relay.messages
    assert sorted(envelope.rcpt_tos) == ["hidden@else.example", "user7@crowd.example"]
    assert envelope.original_content == raw  # raw-capable backends get our bytes unchanged
