"""How many sends with large attachments one process builds at once.

A send holds its attachments and the message made of them while it runs, about 2.5 times the
attachments' size together (ten times while a recipient hosted here gets a copy; bench/send_memory.py).
Web requests and MCP tool calls run in threads, so without a bound a burst of 25 MB sends costs that
many times over. Sends above QMAILING_LARGE_SEND_BYTES of attachments take one of
QMAILING_MAX_CONCURRENT_LARGE_SENDS slots (0: no cap), waiting up to QMAILING_LARGE_SEND_WAIT_SECONDS
for one; past that the caller is told to retry.
"""

import math
import threading
from contextlib import contextmanager

from django.conf import settings

from core.errors import RateLimited

_lock = threading.Lock()
_slots = (None, None)  # (the cap it was made for, its semaphore): settings may change in tests
_holder = threading.local()


def _semaphore(cap):
    global _slots
    with _lock:
        if _slots[0] != cap:
            _slots = (cap, threading.BoundedSemaphore(cap))
        return _slots[1]


@contextmanager
def large_send_slot(*, attachment_bytes):
    """Hold a large-send slot of this process for the block, or raise RateLimited (429 with Retry-After).

    Small sends pass at once, and so does a send inside a block that already holds a slot (a forward
    takes its slot before reading the stored attachments, then sends through email_send).
    """
    cap = settings.QMAILING_MAX_CONCURRENT_LARGE_SENDS
    if attachment_bytes <= settings.QMAILING_LARGE_SEND_BYTES or cap <= 0 or getattr(_holder, "held", False):
        yield
        return
    semaphore = _semaphore(cap)
    wait = settings.QMAILING_LARGE_SEND_WAIT_SECONDS
    if not semaphore.acquire(timeout=wait):
        retry_after = max(1, math.ceil(wait))
        threshold = settings.QMAILING_LARGE_SEND_BYTES
        large = f"{threshold // (1024 * 1024)} MB" if threshold >= 1024 * 1024 else f"{threshold} bytes"
        raise RateLimited(
            f"The server is busy sending other messages with attachments over {large}, so this one was not "
            f"sent: nothing of it was stored or delivered. Send it again in {retry_after} "
            f"second{'' if retry_after == 1 else 's'}.",
            retry_after=retry_after)
    _holder.held = True
    try:
        yield
    finally:
        _holder.held = False
        semaphore.release()
