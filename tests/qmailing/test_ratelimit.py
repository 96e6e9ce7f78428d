"""core.ratelimit: the counters behind every rate limit, in process memory and (marked redis) in Redis."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import RequestFactory

from core import ratelimit


@pytest.fixture
def in_memory(settings):
    settings.REDIS_URL = ""


@pytest.fixture
def in_redis(settings):
    assert settings.REDIS_URL
    return ratelimit._redis_backend(settings.REDIS_URL).client


def _concurrent_hits(key, *, attempts, limit):
    start = threading.Barrier(attempts)

    def one(_):
        start.wait()
        return ratelimit.hit(key, limit=limit, window_seconds=60).allowed

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return list(pool.map(one, range(attempts)))


def test_the_limit_is_allowed_then_refused_with_retry_after(in_memory):
    for _ in range(3):
        assert ratelimit.hit("k", limit=3, window_seconds=60) == (True, 0)
    allowed, retry_after = ratelimit.hit("k", limit=3, window_seconds=60)
    assert not allowed and 59 <= retry_after <= 60
    assert ratelimit.hit("other", limit=3, window_seconds=60).allowed


def test_the_window_closes_and_a_new_one_opens(in_memory, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    assert ratelimit.hit("k", limit=1, window_seconds=60).allowed
    now[0] += 45
    assert ratelimit.hit("k", limit=1, window_seconds=60) == (False, 15)
    now[0] += 15
    assert ratelimit.hit("k", limit=1, window_seconds=60).allowed


def test_the_time_left_never_exceeds_the_window(in_memory, monkeypatch):
    """At this clock reading (start + 60) - start is 60.000000000000114 in floats: the header still says 60."""
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: 1001.11)
    assert ratelimit.hit_usage("k", limit=5, window_seconds=60).reset == 60


def test_concurrent_hits_in_memory_let_exactly_the_limit_through(in_memory):
    results = _concurrent_hits("burst", attempts=64, limit=10)
    assert results.count(True) == 10


@pytest.mark.redis
def test_concurrent_hits_in_redis_let_exactly_the_limit_through(in_redis, settings):
    results = _concurrent_hits("burst", attempts=64, limit=10)
    assert results.count(True) == 10
    key = f"{settings.QMAILING_RATELIMIT_KEY_PREFIX}burst"
    assert int(in_redis.get(key)) == 64 and 0 < in_redis.pttl(key) <= 60_000


@pytest.mark.redis
def test_redis_window_retry_after(in_redis):
    assert ratelimit.hit("k", limit=1, window_seconds=30).allowed
    allowed, retry_after = ratelimit.hit("k", limit=1, window_seconds=30)
    assert not allowed and 29 <= retry_after <= 30


def test_client_ip_trusts_x_forwarded_for_only_behind_the_proxy(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    settings.QMAILING_BEHIND_TLS_PROXY = False
    assert ratelimit.client_ip(request) == "10.0.0.5"
    settings.QMAILING_BEHIND_TLS_PROXY = True
    assert ratelimit.client_ip(request) == "203.0.113.9"  # the hop our proxy appended, not the client's claim


def test_client_ip_counts_ipv6_per_64(settings):
    settings.QMAILING_BEHIND_TLS_PROXY = False
    one = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2::1")
    other = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert ratelimit.client_ip(one) == ratelimit.client_ip(other) == "2001:db8:1:2::/64"
    assert ratelimit.client_ip(RequestFactory().get("/", REMOTE_ADDR="::ffff:192.0.2.1")) == "192.0.2.1"
