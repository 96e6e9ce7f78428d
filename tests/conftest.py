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


def pytest_collection_modifyitems(config, items):
    available = {"postgres": ON_POSTGRES, "redis": ON_REDIS}
    for item in items:
        for marker, present in available.items():
            if item.get_closest_marker(marker) and not present:
                if REQUIRE_SERVICES:
                    item.add_marker(pytest.mark.xfail(reason=f"{marker} required but not configured", run=False, strict=True))
                    raise pytest.UsageError(f"QMAILING_REQUIRE_SERVICES is set but {marker} is not configured ({HOW_TO[marker]}).")
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {HOW_TO[marker]}"))


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Real hashing costs ~0.3 s per sign-up; the tests exercise accounts, not PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Fresh rate-limit counters per test (in memory or Redis); old ones expire with their window.
    settings.QMAILING_RATELIMIT_KEY_PREFIX = f"qmailing-test:{uuid.uuid4().hex}:"
    # allauth's rate-limit counters live in the default cache (memory or Redis): a key prefix of its own per test.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"qmailing-test:{uuid.uuid4().hex}"}}


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
def outsider(db):
    """Another account, which must never see or touch the owner's objects."""
    return make_user("outsider@example.net").account


@pytest.fixture
def free_account(db):
    return make_user("free@example.com", plan="FREE").account


@pytest.fixture
def dns_server(settings):
    """A real DNS server on a free loopback port, answering from a zone the test fills in."""
    server = DnsServer()
    server.start()
    settings.QMAILING_DNS_RESOLVERS = [f"127.0.0.1:{server.port}"]
    settings.QMAILING_DNS_TIMEOUT = 1.0
    yield server
    server.stop()


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
