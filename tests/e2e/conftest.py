"""The end-to-end walk's fixtures: QMailing served as scripts/run serves it (`manage.py run_all`), a test DNS
server it resolves through, its outbox (the file email backend), and one real browser (Debian's Chromium
driven by Playwright).

The server is a child process group pointed at the test database (SQLite file, or PostgreSQL with
DATABASE_URL; Redis with REDIS_URL), with a var dir of its own (outbox, media, broker, beat schedule).
Skips, saying why, when /usr/bin/chromium or playwright is missing.
"""

import email
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from email import policy
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser import CHROMIUM, launch, playwright_api
from tests.dnsserver import DnsServer
from tests.faults import free_port as _free_port
from tests.faults import port_open, stop_process
from tests.timing import wait_until

ROOT = Path(settings.BASE_DIR)
SERVER_START_SECONDS = 90


def _database_env(var_dir):
    """A database of the walk's own, fresh and migrated by `manage.py migrate` as scripts/run does: on the SQLite
    default a file in the server's var dir; with DATABASE_URL (PostgreSQL) a database named after that one plus
    `_walk`, created empty here and dropped afterwards. Yields the child's environment entries."""
    if not settings.DATABASE_URL:
        return {"QMAILING_SQLITE_PATH": str(Path(var_dir) / "qmailing.sqlite3"), "DATABASE_URL": ""}, None
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    name = f"{db['NAME']}_walk"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    admin = f"postgres://{user}{password}@{host}:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{name}"}, drop


class Outbox:
    """The file email backend's folder: every message the server sent (verification, reset, outbound mail)."""

    SEPARATOR = "-" * 79

    def __init__(self, path):
        self.path = Path(path)

    def messages(self):
        found = []
        for file in sorted(self.path.glob("*.log"), key=lambda p: p.stat().st_mtime) if self.path.exists() else ():
            for chunk in file.read_text(errors="replace").split("\n" + self.SEPARATOR + "\n"):
                if chunk.strip():
                    found.append(email.message_from_string(chunk.strip("\n"), policy=policy.default))
        return found

    @staticmethod
    def text(message):
        parts = [part for part in message.walk() if part.get_content_type() in ("text/plain", "text/html")
                 and part.get_content_disposition() != "attachment"]
        return "\n".join(part.get_content() for part in parts)

    def wait_for(self, predicate, what, timeout=30):
        return wait_until(lambda: next((message for message in self.messages() if predicate(message)), None), timeout,
                          f"an email in the outbox ({self.path}) for {what}", interval=0.2,
                          detail=lambda: f"it holds: {[m['To'] + ': ' + m['Subject'] for m in self.messages()]}")

    def link(self, predicate, pattern, what, timeout=30):
        message = self.wait_for(predicate, what, timeout)
        match = re.search(pattern, self.text(message))
        assert match, f"the email for {what} has no link matching {pattern!r}:\n{self.text(message)[:2000]}"
        return match.group(0)


class Server:
    def __init__(self, base, port, smtp_port, var_dir, log_path, process, dns):
        self.base, self.port, self.smtp_port = base, port, smtp_port
        self.var_dir, self.log_path, self.process, self.dns = Path(var_dir), Path(log_path), process, dns
        self.outbox = Outbox(self.var_dir / "outbox")

    def log_tail(self, chars=4000):
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def sync_api():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser walk")
    return playwright_api()


@pytest.fixture(scope="module")
def dns():
    server = DnsServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(sync_api, dns, tmp_path_factory):
    """`python manage.py run_all --port <free>` on a fresh database; its processes are stopped at the end."""
    var_dir = tmp_path_factory.mktemp("e2e-var")
    port, smtp_port = _free_port(), _free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    database, drop_database = _database_env(var_dir)
    env.update(database)
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
        _flush_own_redis(settings.REDIS_URL)
    env.update({
        "QMAILING_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "true", "PYTHONUNBUFFERED": "1",
        "QMAILING_DNS_RESOLVERS": f"127.0.0.1:{dns.port}", "QMAILING_DNS_TIMEOUT": "1",
        "QMAILING_SMTP_PORT": str(smtp_port),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(var_dir / "outbox"),
    })
    env.pop("QMAILING_BASE_URL", None)  # run_all sets it to the port it serves
    started = time.monotonic()
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    if migrated.returncode != 0:
        pytest.fail(f"manage.py migrate failed:\n{(migrated.stderr or migrated.stdout)[-4000:]}")
    log_path = var_dir / "run_all.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "manage.py", "run_all", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    instance = Server(f"http://127.0.0.1:{port}", port, smtp_port, var_dir, log_path, process, dns)
    try:
        _wait_until_serving(instance)
        instance.startup_seconds = round(time.monotonic() - started, 1)
        print(f"\n[e2e] run_all serves {instance.base} (SMTP {smtp_port}, DNS {dns.port}) after "
              f"{instance.startup_seconds}s (migrate included); log: {log_path}")
        yield instance
    finally:
        _stop(process)
        log.close()
        if drop_database is not None:
            drop_database()


# The keys of the server's own: its cache and rate-limit counters (the default prefixes; tests in the pytest
# process use prefixes of their own, tests/conftest.py) and the broker's queue and unacknowledged set.
SERVER_KEYS = ("qmailing:*", "celery", "celery\x06\x16*", "unacked", "unacked_index", "unacked_mutex")


def _flush_own_redis(url):
    """Stale queues and rate-limit counters of an earlier run, in this run's own Redis database (never db 0). Only
    the server's keys: under xdist the other workers' tests use the same database at the same time."""
    import redis

    client = redis.Redis.from_url(url)
    if client.connection_pool.connection_kwargs.get("db", 0) != 0:
        for pattern in SERVER_KEYS:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)


def _wait_until_serving(instance):
    import urllib.request

    up = {"web": False, "SMTP": False}

    def serving():
        if instance.process.poll() is not None:
            pytest.fail(f"run_all exited with code {instance.process.returncode}:\n{instance.log_tail()}")
        if not up["web"]:
            try:
                with urllib.request.urlopen(f"{instance.base}/accounts/login/", timeout=2) as response:
                    up["web"] = response.status == 200
            except OSError:
                pass
        up["SMTP"] = up["SMTP"] or port_open(instance.smtp_port)
        return up["web"] and up["SMTP"] and " ready." in instance.log_path.read_text(errors="replace")

    wait_until(serving, SERVER_START_SECONDS, "run_all serving", interval=0.25,
               detail=lambda: f"up: {up}\n{instance.log_tail()}")


def _stop(process):
    stop_process(process, signal.SIGINT, timeout=30, group=True)  # run_all stops its children (each in its own group)


@pytest.fixture(scope="module")
def browser(sync_api, server, monkeypatch_module):
    # Playwright's sync API runs an event loop in this thread; nothing here touches the ORM.
    monkeypatch_module.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


@pytest.fixture(scope="module")
def screenshot_dir():
    chosen = os.environ.get("QMAILING_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="qmailing-e2e-shots-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"\n[e2e] screenshots go to {path}")
    return path


@pytest.fixture(scope="module")
def axe_script():
    """The pinned axe-core (scripts/axe), or None with the reason the accessibility check is skipped."""
    from tests.e2e.axe import AxeUnavailable, axe_install

    try:
        return axe_install(), None
    except AxeUnavailable as exc:
        return None, str(exc)
