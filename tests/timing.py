"""Time in tests: waiting for a condition instead of sleeping, and wall-clock promises on a shared machine.

`wait_until(predicate, timeout, what)` polls until `predicate()` is truthy and returns its value; after
`timeout` seconds it fails the test naming `what`. A fixed sleep is never a synchronisation: wait for the
condition (a row, a port, a log line, a counter) or a readiness signal instead.

A latency promise ("returns within a second") is asserted against `within(seconds)`, the promise times
QMAILING_TEST_TIME_FACTOR, and its test carries `@pytest.mark.latency` (`-m "not latency"` leaves them out).
The factor is 1 when the promise itself is to be checked (a quiet machine, bench/), 2 by default, 4 on CI
(CI=true), where two test workers share the cores with the database and the browser.
"""

import asyncio
import os
import time

import pytest


def _time_factor():
    chosen = os.environ.get("QMAILING_TEST_TIME_FACTOR", "").strip()
    if chosen:
        return float(chosen)
    return 4.0 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else 2.0


TIME_FACTOR = _time_factor()


def within(seconds):
    """The bound a wall-clock promise of `seconds` is held to on this machine."""
    return seconds * TIME_FACTOR


def wait_until(predicate, timeout, what, interval=0.02, detail=None):
    """The first truthy value of `predicate()`, polled every `interval` s; fails the test after `timeout` s,
    naming `what` and adding `detail()` (a log tail, what was seen instead) when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout} s" + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)


async def wait_until_async(predicate, timeout, what, interval=0.02):
    """wait_until inside an event loop: the loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(interval)
