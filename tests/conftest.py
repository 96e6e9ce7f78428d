import os
import uuid

import pytest
from django.conf import settings

from tests.dnsserver import DnsServer
from tests.browser import browser_page  # noqa: F401 (a fixture: a 390 px page in the system Chromium)

REQUIRE_SERVICES = os.environ.get("QMAILING_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
ON_REDIS = bool(settings.REDIS_URL)

HOW_TO = {
    "postgres": "set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run it (bash .ci/run runs both)",
    "redis": "set REDIS_URL=redis://127.0.0.1:6379/0 to run it (bash .ci/run runs both)",
}


# Tests that start Celery workers or `run_all` against the broker. On Redis every xdist worker shares its queues
# (one database number for the run), so a worker process started by one test would take the tasks another test
# enqueued for its own database: these files run one after another, in one xdist worker. On the embedded broker
# each xdist worker has a broker folder of its own (tests/workers.py), and they spread like the rest.
BROKER_CONSUMERS = ("tests/mailboxes/test_fault_injection.py", "tests/webhooks/test_worker_kill.py",
                    "tests/qmailing/test_processes.py", "tests/e2e/test_walk.py")


# Tests that serve qmailing.asgi from uvicorn in this process. The process has one MCP session manager, and
# each server's lifespan starts it with the Host allow-list of that moment (the server's port, from an
# override_settings): these files run in one xdist worker, in the order of a serial run (tests/agent/mcp's
# session-long server first; test_hardening_rest and test_redis_down after it).
IN_PROCESS_ASGI = ("tests/agent/mcp/", "tests/qmailing/test_hardening_rest.py", "tests/qmailing/test_redis_down.py")
OWN_PROCESS_SERVERS = ("tests/agent/mcp/test_daphne.py", "tests/agent/mcp/test_inspector.py",  # daphne in a subprocess
                       "tests/agent/mcp/test_ts_client.py")


def _xdist_group(path):
    if path.startswith(IN_PROCESS_ASGI) and path not in OWN_PROCESS_SERVERS:
        return "in-process-asgi"
    if ON_REDIS and path in BROKER_CONSUMERS:
        return "broker"
    return path


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks (its hook is registered later)
def pytest_collection_modifyitems(config, items):
    for item in items:
        # --dist loadgroup (pytest.ini): a file stays in one xdist worker (module fixtures start once; the
        # end-to-end walk's steps run in order), unless it names a group of its own.
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_xdist_group(item.nodeid.split("::", 1)[0])))
    available = {"postgres": ON_POSTGRES, "redis": ON_REDIS}
    for item in items:
        for marker, present in available.items():
            if item.get_closest_marker(marker) and not present:
                if REQUIRE_SERVICES:
                    item.add_marker(pytest.mark.xfail(reason=f"{marker} required but not configured", run=False, strict=True))
                    raise pytest.UsageError(f"QMAILING_REQUIRE_SERVICES is set but {marker} is not configured ({HOW_TO[marker]}).")
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {HOW_TO[marker]}"))


TRANSACTIONAL_FIXTURES = {"transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback"}
_seeded_rows_flushed = False  # a transactional test's teardown emptied the database since the rows were restored


def _transactional(item):
    marker = item.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return bool(TRANSACTIONAL_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """The rows the migrations seed (the plans) back before a test in a transaction, when a transactional test
    flushed them. A serial run orders the transactional tests last (pytest-django), so they never meet one;
    an xdist worker takes files as they come, and a transactional file may come first."""
    global _seeded_rows_flushed
    if _seeded_rows_flushed and not _transactional(item):
        from django.db import connections
        from pytest_django.plugin import blocking_manager_key

        with item.config.stash[blocking_manager_key].unblock():
            for connection in connections.all():
                contents = getattr(connection, "_test_serialized_contents", None)
                if contents:
                    connection.creation.deserialize_db_from_string(contents)
        _seeded_rows_flushed = False
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    global _seeded_rows_flushed
    yield
    if _transactional(item):
        _seeded_rows_flushed = True


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Real hashing costs ~0.3 s per sign-up; the tests exercise accounts, not PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Fresh rate-limit counters per test (in memory or Redis); old ones expire with their window.
    settings.QMAILING_RATELIMIT_KEY_PREFIX = f"qmailing-test:{uuid.uuid4().hex}:"
    # allauth's rate-limit counters live in the default cache (memory or Redis): a key prefix of its own per test.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"qmailing-test:{uuid.uuid4().hex}"}}
    # No background request-log writer in this process (its own connection could not see a test's uncommitted
    # rows): a test that reads the log calls accounts.request_log.request_log_flush() first. Rows another test
    # left in the buffer are not this test's.
    settings.QMAILING_REQUEST_LOG_FLUSH_SECONDS = 0
    from accounts import request_log

    with request_log._buffer.lock:
        request_log._buffer.rows.clear()
    yield
    with request_log._buffer.lock:  # nor for the exit's flush, once the test database is gone
        request_log._buffer.rows.clear()


@pytest.fixture(autouse=True)
def _usable_connection():
    """On PostgreSQL, what Django's health check does at the start of every request: a connection whose
    backend was terminated since the last test (the fault-injection tests kill backends) is replaced before
    this test's first query instead of failing it."""
    from django.db import connection

    if (connection.vendor == "postgresql" and connection.connection is not None and not connection.in_atomic_block
            and not connection.is_usable()):
        connection.close()


@pytest.fixture
def plans(db):
    from accounts.selectors import plan_get

    return {code: plan_get(code=code) for code in ("FREE", "PLUS", "PRO", "PRO_MAX")}


def make_user(email, plan="PLUS"):
    from accounts.services import account_set_plan, account_signup

    user = account_signup(email=email, password="correct horse battery 9", full_name=email.split("@")[0].title())
    account_set_plan(account=user.account, plan_code=plan)
    return user


@pytest.fixture
def owner(db):
    """The account under test (PLUS)."""
    return make_user("owner@example.org").account


@pytest.fixture
def mailbox(owner):
    """The owner's mailbox on the shared domain (always verified, with its DKIM key), created by signup."""
    return owner.mailboxes.get()


@pytest.fixture
def outsider(db):
    """Another account, which must never see or touch the owner's objects."""
    return make_user("outsider@example.net").account


@pytest.fixture
def free_account(db):
    return make_user("free@example.com", plan="FREE").account


@pytest.fixture
def dns_server(settings):
    """A real DNS server on a free loopback port, answering from a zone the test fills in."""
    from mailboxes.inbound.authentication import dns_cache_clear

    server = DnsServer()
    server.start()
    settings.QMAILING_DNS_RESOLVERS = [f"127.0.0.1:{server.port}"]
    settings.QMAILING_DNS_TIMEOUT = 1.0
    dns_cache_clear()  # a port used again by a later test must not answer from an earlier test's zone
    yield server
    server.stop()
    dns_cache_clear()


@pytest.fixture
def verified_domain(owner, dns_server):
    """A custom domain of the owner with every record published and verified."""
    from domains.services import domain_add, domain_verify

    domain = domain_add(account=owner, name="brand.example")
    dns_server.publish_checklist(domain)
    return domain_verify(domain=domain)


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup, django_db_blocker):
    """On PostgreSQL the connection pool keeps connections open; close it so the test database can be dropped."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all(initialized_only=True):
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
