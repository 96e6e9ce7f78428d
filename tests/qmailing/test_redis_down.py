"""With Redis unreachable the API still answers: rate limits count in process memory, event wake-ups are skipped.

docs/operations/security-and-reliability.md: losing Redis makes new background work wait; it never fails a read, and never loses data.
Redis is made unreachable three ways: a port nobody listens on (refused at once), a listener that never
answers (every read times out), and a proxy the test owns, stopped and started again.
"""

import socket
import time
from urllib.parse import urlsplit

import httpx2
import pytest
import redis
from django.db import transaction
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mailboxes.models import Mailbox
from accounts.tokens import token_lookup
from core import ratelimit
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.faults import TcpProxy, free_port
from tests.timing import within
from tests.agent.mcp.conftest import ServerThread, run
from events.models import Event, EventType
from events.services import event_publish

LIST_MAILBOXES = "qmailing_list_mailboxes"
CREATE_MAILBOX = "qmailing_create_mailbox"


@pytest.fixture
def redis_refused(settings):
    """REDIS_URL on a port nobody listens on; the Django cache's too, so a call that used the cache would fail."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = url
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": "qmailing-test"}}
    return url


@pytest.fixture
def redis_silent(settings):
    """REDIS_URL on a listener that accepts connections and never answers: every command times out."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        yield settings.REDIS_URL


@pytest.fixture(scope="module")
def mcp_server(django_db_setup, django_db_blocker):
    """uvicorn serving qmailing.asgi in a thread, for this module only: it stops, and the process's MCP session
    manager with it, before another module's server (tests/agent/mcp) uses the manager again."""
    from django.db import connections
    from django.test import override_settings

    from qmailing.asgi import application

    server = ServerThread(application)
    with override_settings(QMAILING_MCP_ALLOWED_PORTS=[str(server.port)]):  # the Host check is exact
        server.start()
        yield server
        server.stop()
    with django_db_blocker.unblock():
        connections.close_all()


def _warnings(caplog, text):
    return [record for record in caplog.records if record.levelname == "WARNING" and text in record.getMessage()]


def test_a_rest_read_answers_200_with_rate_limit_headers(client, owner, redis_refused, settings, caplog):
    token = token_for(owner)
    response = call(client, registry()[LIST_MAILBOXES], token=token)
    assert response.status_code == 200, response.content
    limit = settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == str(limit - 1)
    assert 1 <= int(response["X-RateLimit-Reset"]) <= 60
    assert len(_warnings(caplog, "Redis is unreachable for rate limits")) == 1


def test_the_token_throttle_still_refuses_past_its_limit_counting_in_this_process(client, owner, redis_refused,
                                                                                 settings, caplog):
    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 3
    list_mailboxes = registry()[LIST_MAILBOXES]
    token = token_for(owner)
    remaining = [call(client, list_mailboxes, token=token)["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = call(client, list_mailboxes, token=token)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60 and refused["X-RateLimit-Remaining"] == "0"
    assert call(client, list_mailboxes, token=token_for(owner)).status_code == 200  # another token, its own budget
    assert len(_warnings(caplog, "Redis is unreachable for rate limits")) == 1  # once, not once per request


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows
def test_an_mcp_tool_call_answers(mcp_server, owner, redis_refused, caplog):
    token = token_for(owner)

    async def scenario():  # initialize (throttled per token), then tools/call (metered): both count in memory
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{mcp_server.url}/mcp", http_client=http)) as client:
                return await client.call_tool(LIST_MAILBOXES, {"limit": 5})

    result = run(scenario())
    assert result.is_error is False, result.content
    assert result.structured_content["items"]  # the owner's default mailbox
    assert len(_warnings(caplog, "Redis is unreachable for rate limits")) == 1


@pytest.mark.latency
def test_after_one_timeout_redis_is_left_alone_for_the_backoff(redis_silent, caplog):
    timings = []
    for _ in range(5):
        started = time.monotonic()
        assert ratelimit.hit("silent", limit=10, window_seconds=60).allowed
        timings.append(time.monotonic() - started)
    assert 0.9 <= timings[0] < within(2.5)  # socket_timeout (1 s), no retry on a timeout
    assert max(timings[1:]) < min(within(0.05), 0.5)  # the breaker is open: no connection attempt at all
    assert len(_warnings(caplog, "Redis is unreachable for rate limits")) == 1
    assert ratelimit.hit("silent", limit=5, window_seconds=60).allowed is False  # the sixth hit, counted in memory


def test_an_event_write_commits_and_answers_201(client, owner, redis_refused, django_capture_on_commit_callbacks,
                                                caplog):
    token = token_for(owner)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = call(client, registry()[CREATE_MAILBOX], token=token, args={"local_part": "still-up"})
    assert response.status_code == 201, response.content
    assert callbacks, "the event's wake-up ran on commit"
    mailbox = Mailbox.objects.get(pk=response.json()["id"])
    assert Event.objects.filter(account=owner, mailbox=mailbox, type="mailbox.created").exists()
    assert len(_warnings(caplog, "Redis is unreachable for event wake-ups")) == 1
    assert not [record for record in caplog.records if record.levelname == "ERROR"]  # nothing raised on commit


@pytest.mark.latency
def test_event_writes_commit_and_only_the_first_waits_for_redis(owner, redis_silent,
                                                               django_capture_on_commit_callbacks, caplog):
    durations = []
    for number in range(3):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                event_publish(account=owner, type=EventType.MAILBOX_CREATED, payload={"n": number})
        durations.append(time.monotonic() - started)
    written = Event.objects.filter(account=owner, payload__has_key="n").values_list("payload__n", flat=True)
    assert sorted(written) == [0, 1, 2]
    assert durations[0] < within(2.5) and max(durations[1:]) < within(0.1)  # one socket timeout (1 s), then the PUBLISH is skipped
    assert len(_warnings(caplog, "Redis is unreachable for event wake-ups")) == 1
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.redis
def test_the_limiter_goes_back_to_redis_once_it_answers_again(client, owner, settings, monkeypatch, caplog):
    real = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(real.hostname, real.port or 6379).up()
    monkeypatch.setattr(ratelimit.RedisCounters, "BACKOFF_SECONDS", 0.3)
    settings.REDIS_URL = real._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    list_mailboxes = registry()[LIST_MAILBOXES]
    token = token_for(owner)
    key = f"{settings.QMAILING_RATELIMIT_KEY_PREFIX}api:token:{token_lookup(token).pk}:minute"
    in_redis = redis.Redis.from_url(real.geturl())
    limit = settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE
    try:
        assert call(client, list_mailboxes, token=token)["X-RateLimit-Remaining"] == str(limit - 1)
        assert int(in_redis.get(key)) == 1

        proxy.down()
        during = [call(client, list_mailboxes, token=token) for _ in range(2)]
        assert [r.status_code for r in during] == [200, 200]
        # This process's own count, from 1: the hits in Redis are not known here.
        assert [r["X-RateLimit-Remaining"] for r in during] == [str(limit - 1), str(limit - 2)]
        assert int(in_redis.get(key)) == 1
        assert len(_warnings(caplog, "Redis is unreachable for rate limits")) == 1

        proxy.up()
        time.sleep(0.4)  # past the back-off
        after = call(client, list_mailboxes, token=token)
        assert after.status_code == 200
        assert after["X-RateLimit-Remaining"] == str(limit - 2)  # Redis's count again: its first hit, then this
        assert int(in_redis.get(key)) == 2
        assert _warnings(caplog, "Redis answers rate limits again")
    finally:
        proxy.down()
        in_redis.delete(key)
        in_redis.close()
