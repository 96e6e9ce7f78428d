"""Fixed-window rate limits: one atomic check-and-increment per call, shared by every gate.

    allowed, retry_after = hit("signin:ip:203.0.113.9", limit=30, window_seconds=900)
    if not allowed:
        raise RateLimited("…", retry_after=retry_after)

A key's window opens on its first hit and lasts `window_seconds`; within it the first `limit` hits are
allowed and the rest are refused, with `retry_after` the whole seconds until the window closes. The
check and the increment are one step, so N concurrent hits on one key let exactly `limit` through.

Where the counters live: with `REDIS_URL` set, in Redis (one Lua script, one round trip, so every web
node shares them); without it, in this process's memory under a lock (the embedded default runs one
web process). While Redis does not answer, they fall back to this process's memory so that every call
is still answered (RedisCounters says what that costs). Keys are prefixed with
`QMAILING_RATELIMIT_KEY_PREFIX`; callers pass short names such as `signin:email:<hash>` and should hash
anything personal. Counters need no cleanup: they expire with their window.
"""

import ipaddress
import logging
import math
import threading
import time
from typing import NamedTuple

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# What an unreachable Redis raises (refused, reset, timed out, DNS); anything else is a bug and propagates.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


class Decision(NamedTuple):
    allowed: bool
    retry_after: int  # when refused: whole seconds until the key's window closes; 0 when allowed


class Usage(NamedTuple):
    allowed: bool
    limit: int
    remaining: int  # hits left in this window after this one
    reset: int  # whole seconds until the window closes (X-RateLimit-Reset, Retry-After when refused)


def hit(key, *, limit, window_seconds):
    """Count one hit on `key` and say whether it is within `limit` hits per `window_seconds`."""
    usage = hit_usage(key, limit=limit, window_seconds=window_seconds)
    return Decision(allowed=usage.allowed, retry_after=0 if usage.allowed else usage.reset)


def hit_usage(key, *, limit, window_seconds):
    """`hit`, also saying how much of the window is left (for X-RateLimit-* headers)."""
    count, ttl_ms = _backend().incr(_full_key(key), window_seconds * 1000)
    # Capped at the window: in memory the time left is (start + window) - now in floats, which can come out a
    # hair above the window (60.000000000000014 s) and would round up to 61.
    return Usage(allowed=count <= limit, limit=limit, remaining=max(limit - count, 0),
                 reset=min(window_seconds, max(1, math.ceil(ttl_ms / 1000))))


def _full_key(key):
    return f"{settings.QMAILING_RATELIMIT_KEY_PREFIX}{key}"


def _backend():
    return _redis_backend(settings.REDIS_URL) if settings.REDIS_URL else _memory


class MemoryCounters:
    """The embedded backend: a dict under one lock, exact for every thread of this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counters = {}  # key -> [count, expires_at (time.monotonic())]
        self._next_sweep = 0.0

    def incr(self, key, window_ms):
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:  # drop closed windows now and then so memory stays bounded
                self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
                self._next_sweep = now + 60
            entry = self._counters.get(key)
            if entry is None or entry[1] <= now:
                entry = self._counters[key] = [0, now + window_ms / 1000]
            entry[0] += 1
            return entry[0], (entry[1] - now) * 1000


_memory = MemoryCounters()

# INCR, then start the window on the first hit; PTTL < 0 mends a key that somehow lost its expiry.
_INCR_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class RedisOutage:
    """A small circuit breaker: after a Redis call fails, callers skip Redis for `backoff_seconds`.

        if outage.skipping(): use the fallback
        else: try Redis; outage.answered() on success, outage.failed(error) on REDIS_DOWN

    Without it every call during an outage would pay a connect attempt (up to the client's connect
    timeout when packets are dropped rather than refused). Once the back-off ends, the next call tries
    Redis again; a success closes the breaker. The warning is logged at most once per
    `warn_every_seconds`, the recovery once.
    """

    def __init__(self, *, name, consequence, backoff_seconds=5.0, warn_every_seconds=60.0, log=logger):
        self.name = name  # who uses Redis here, for the log
        self.consequence = consequence  # what happens meanwhile, for the log
        self.backoff_seconds = backoff_seconds
        self.warn_every_seconds = warn_every_seconds
        self.log = log
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._down = False
        self._warned_at = None

    def skipping(self):
        return self._down and time.monotonic() < self._skip_until

    def failed(self, error):
        now = time.monotonic()
        with self._lock:
            self._down = True
            self._skip_until = now + self.backoff_seconds
            warn = self._warned_at is None or now - self._warned_at >= self.warn_every_seconds
            if warn:
                self._warned_at = now
        if warn:
            self.log.warning("Redis is unreachable for %s (%s: %s): %s; trying it again every %g s.",
                             self.name, type(error).__name__, error, self.consequence, self.backoff_seconds)

    def answered(self):
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                self.log.warning("Redis answers %s again.", self.name)


class RedisCounters:
    """Counters in Redis, shared by every web process; in this process's memory while Redis is unreachable.

    The cost of staying up: while Redis is down each web process counts on its own, so a key (a token's
    minute, an account's day, an IP's sign-ins) can get up to N × its limit across N processes, and the
    hits counted in memory are forgotten when Redis comes back. In exchange no call fails because Redis is away.
    """

    BACKOFF_SECONDS = 5.0

    def __init__(self, url):
        # Short timeouts: with redis-py's defaults every call waited 5 s on a Redis that stopped answering.
        # One retry, on a connection error only, reconnects a pooled connection that a Redis restart closed.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0,
                                           retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        self._incr = self.client.register_script(_INCR_SCRIPT)
        self.fallback = MemoryCounters()
        self.outage = RedisOutage(name="rate limits", consequence="each process counts in its own memory",
                                  backoff_seconds=self.BACKOFF_SECONDS)

    def incr(self, key, window_ms):
        if not self.outage.skipping():
            try:
                count, ttl_ms = self._incr(keys=[key], args=[int(window_ms)])
            except REDIS_DOWN as error:
                self.outage.failed(error)
            else:
                self.outage.answered()
                return int(count), int(ttl_ms)
        return self.fallback.incr(key, window_ms)


_redis_clients = {}
_redis_lock = threading.Lock()


def _redis_backend(url):
    with _redis_lock:  # one connection pool per URL for the whole process
        if url not in _redis_clients:
            _redis_clients[url] = RedisCounters(url)
        return _redis_clients[url]


def client_ip(request):
    """The address to count a request against: REMOTE_ADDR, or, behind our TLS proxy, the last X-Forwarded-For hop.

    Only the entry our own proxy appended (the rightmost) is trusted; anything left of it came from the client.
    IPv6 clients are counted per /64, the block one subscriber usually holds.
    """
    return client_address(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def client_ip_of_scope(scope):
    """client_ip for an ASGI scope (the MCP endpoint, which runs in front of Django)."""
    client = scope.get("client") or ("", 0)
    forwarded = b",".join(value for key, value in scope.get("headers", ()) if key == b"x-forwarded-for")
    return client_address(client[0] or "", forwarded.decode("latin-1"))


def client_address(remote_addr, forwarded_for):
    """The counted address from the peer's address and the X-Forwarded-For header's value (see client_ip)."""
    address = remote_addr
    if settings.QMAILING_BEHIND_TLS_PROXY:
        forwarded = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if forwarded:
            address = forwarded[-1]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
