"""The processes a deployment runs, started for real: a Celery worker fed across processes by the
configured broker (the embedded filesystem broker, or Redis when REDIS_URL is set), and `run_all`."""

import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from domains.models import Domain
from domains.services import domain_add
from domains.tasks import domain_verify_task
from tests.faults import free_port as _free_port
from tests.faults import stop_process
from tests.timing import wait_until

ROOT = settings.BASE_DIR


def _wait(predicate, timeout, what):
    """wait_until at a pace that leaves the database to the processes under test (SQLite has one writer)."""
    return wait_until(predicate, timeout, what, interval=0.25)


def _database_env():
    """Point a child process at the database this test run uses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"QMAILING_SQLITE_PATH": db["NAME"], "DATABASE_URL": ""}
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return {"DATABASE_URL": f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_process_runs_tasks_enqueued_here(dns_server, tmp_path):
    from tests.conftest import make_user

    owner = make_user("worker@example.com").account
    domain = domain_add(account=owner, name="worker.example")
    dns_server.publish_checklist(domain)
    env = {**os.environ, **_database_env(), "QMAILING_VAR_DIR": str(settings.VAR_DIR),
           "QMAILING_DNS_RESOLVERS": f"127.0.0.1:{dns_server.port}", "QMAILING_DNS_TIMEOUT": "2",
           "REDIS_URL": settings.REDIS_URL, "CELERY_TASK_ALWAYS_EAGER": "false"}
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "qmailing", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--hostname", f"test-{os.getpid()}@localhost"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        domain_verify_task.delay(str(domain.id))
        _wait(lambda: Domain.objects.get(pk=domain.pk).status == Domain.Status.VERIFIED, 60,
              f"the worker to verify the domain (log: {tmp_path / 'worker.log'})")
    finally:
        stop_process(worker, timeout=20)
        log.close()
    assert "domain_verify_task" in (tmp_path / "worker.log").read_text()


def test_run_all_starts_every_process_and_ctrl_c_stops_them_all(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"QMAILING_VAR_DIR": str(tmp_path / "var"), "DJANGO_DEBUG": "true", "QMAILING_SMTP_PORT": str(_free_port())})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    log_path = tmp_path / "run_all.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "run_all", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)

        def page_answers():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/signin/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            _wait(page_answers, 60, f"the web process (log: {log_path})")
            _wait(lambda: "ready." in log_path.read_text() and "beat: Starting" in log_path.read_text(), 60,
                  f"the worker and beat (log: {log_path})")
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
    text = log_path.read_text()
    assert code == 0, text
    children = [line.split("pid ")[1].split(")")[0] for line in text.splitlines() if "[run_all] started" in line]
    assert len(children) >= 3
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    for name in ("web", "worker", "beat"):
        assert f"[run_all] {name} stopped." in text


@pytest.mark.redis
def test_channel_layer_round_trip_over_redis():
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "ping", "n": 1})
    assert async_to_sync(layer.receive)(channel) == {"type": "ping", "n": 1}


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.0.2.1", False),
                                            ("example.com", False)])
def test_run_all_knows_loopback_hosts(host, loopback):
    from qmailing.management.commands.run_all import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_run_all_warns_loudly_when_not_on_loopback(host, warned, monkeypatch, capsys):
    from django.core.management import call_command

    from qmailing.management.commands import run_all

    monkeypatch.setattr(run_all, "process_table", lambda host, port, smtp_port=None, web_workers=1: [("noop", [sys.executable, "-c", "pass"])])
    monkeypatch.setattr(run_all.signal, "signal", lambda *args: None)  # keep pytest's own Ctrl-C handler
    with pytest.raises(SystemExit):  # the one child exits at once, which stops run_all
        call_command("run_all", "--host", host, "--port", "8999")
    assert ("WARNING: HTTP on 0.0.0.0:8999 is not loopback" in capsys.readouterr().err) is warned


def test_run_all_points_links_and_mcp_origins_at_the_port_it_serves():
    from qmailing.management.commands.run_all import local_urls

    environment = local_urls({}, "127.0.0.1", 8765)
    assert environment["QMAILING_BASE_URL"] == "http://127.0.0.1:8765"
    assert environment["QMAILING_MCP_ALLOWED_ORIGINS"] == "http://127.0.0.1:8765,http://localhost:8765"
    chosen = local_urls({"QMAILING_BASE_URL": "https://mail.example.com"}, "127.0.0.1", 8765)
    assert chosen["QMAILING_BASE_URL"] == "https://mail.example.com"  # what the operator set wins


def test_run_all_smtp_port_reaches_the_smtp_server(monkeypatch):
    from django.core.management import call_command

    from mailboxes.management.commands.run_smtp import Command as RunSmtp
    from qmailing.management.commands import run_all

    asked, process_table = {}, run_all.process_table

    def table(host, port, smtp_port=None, web_workers=1):
        asked.update(host=host, port=port, smtp_port=smtp_port)
        return [("noop", [sys.executable, "-c", "pass"])]

    monkeypatch.setattr(run_all, "process_table", table)
    monkeypatch.setattr(run_all.signal, "signal", lambda *args: None)
    with pytest.raises(SystemExit):
        call_command("run_all", "--port", "8999", "--smtp-port", "2626")
    assert asked == {"host": "127.0.0.1", "port": 8999, "smtp_port": 2626}

    [smtp] = [command for name, command in process_table("127.0.0.1", 8999, 2626) if name == "smtp"]
    assert smtp[1:3] == ["manage.py", "run_smtp"]
    options = RunSmtp().create_parser("manage.py", "run_smtp").parse_args(smtp[3:])
    assert options.port == 2626
    [default] = [command for name, command in process_table("127.0.0.1", 8999) if name == "smtp"]
    assert RunSmtp().create_parser("manage.py", "run_smtp").parse_args(default[3:]).port == settings.QMAILING_SMTP_PORT
