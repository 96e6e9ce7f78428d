"""Start every QMailing process in the foreground and stop them all together (Ctrl-C)."""

import ipaddress
import os
import selectors
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def local_urls(environ, host, port):
    """The children's environment: unless set, the base URL and MCP origins are where this server listens.

    Links, snippets, error `type` URLs and the MCP Origin check all follow QMAILING_BASE_URL, so with
    `--port 8080` they must say 8080, not the default 8000.
    """
    environment = dict(environ)
    shown = "127.0.0.1" if is_loopback(host) or host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    environment.setdefault("QMAILING_BASE_URL", f"http://{shown}:{port}")
    if is_loopback(host):
        environment.setdefault("QMAILING_MCP_ALLOWED_ORIGINS", f"http://127.0.0.1:{port},http://localhost:{port}")
    return environment


def process_table(host, port, smtp_port=None):
    python = sys.executable
    table = [
        ("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "qmailing.asgi:application"]),
        ("worker", [python, "-m", "celery", "-A", "qmailing", "worker", "--loglevel", "INFO", "--concurrency", "2",
                    "-Q", "celery", "--hostname", "worker@%h"]),
        # Webhook attempts wait on the network, so threads: many in flight, one process.
        ("webhooks", [python, "-m", "celery", "-A", "qmailing", "worker", "--loglevel", "INFO", "--pool", "threads",
                      "--concurrency", str(settings.QMAILING_WEBHOOK_WORKER_THREADS), "-Q", settings.QMAILING_WEBHOOK_QUEUE,
                      "--hostname", "webhooks@%h"]),
        ("beat", [python, "-m", "celery", "-A", "qmailing", "beat", "--loglevel", "INFO",
                  "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME]),
    ]
    smtp_command = os.path.join(settings.BASE_DIR, "mailboxes", "management", "commands", "run_smtp.py")
    if os.path.exists(smtp_command):
        port_option = ["--port", str(smtp_port)] if smtp_port is not None else []  # else QMAILING_SMTP_PORT
        table.append(("smtp", [python, "manage.py", "run_smtp", *port_option]))
    return table


def is_loopback(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Run web (daphne), Celery worker, Celery beat and the SMTP server together; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("QMAILING_HTTP_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("QMAILING_HTTP_PORT", "8000")))
        parser.add_argument("--smtp-port", type=int, default=None,
                            help=f"Port of the inbound SMTP server (default: QMAILING_SMTP_PORT, {settings.QMAILING_SMTP_PORT}).")

    def handle(self, *args, host, port, smtp_port=None, **options):
        if not is_loopback(host):
            debug = " with DEBUG on (error pages show code and settings)" if settings.DEBUG else ""
            self.stderr.write("\n".join([
                "!" * 78,
                f"[run_all] WARNING: HTTP on {host}:{port} is not loopback. This is a local setup{debug};",
                "[run_all] anyone who can reach the port gets it, and the demo superuser if create_demo made one.",
                "[run_all] Leave --host at 127.0.0.1 unless you mean it.",
                "!" * 78,
            ]))
        children = {}
        selector = selectors.DefaultSelector()
        environment = local_urls(os.environ, host, port)
        for name, command in process_table(host, port, smtp_port):
            proc = subprocess.Popen(command, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=environment)
            children[name] = proc
            selector.register(proc.stdout, selectors.EVENT_READ, name)
            self.stdout.write(f"[run_all] started {name} (pid {proc.pid}): {' '.join(command[1:])}")
        self.stdout.write(f"[run_all] QMailing is starting on http://{host}:{port}/ — Ctrl-C stops everything.")

        stopping = {"flag": False}

        def request_stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        exit_code = 0
        try:
            while not stopping["flag"]:
                for key, _ in selector.select(timeout=0.5):
                    line = key.fileobj.readline()
                    if line:
                        self.stdout.write(f"{key.data:>6} | {line.decode('utf-8', 'replace').rstrip()}")
                    else:
                        selector.unregister(key.fileobj)
                dead = [(name, proc.returncode) for name, proc in children.items() if proc.poll() is not None]
                if dead:
                    name, code = dead[0]
                    self.stderr.write(f"[run_all] {name} exited with code {code}; stopping the others.")
                    exit_code = code or 1
                    break
        finally:
            self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _stop(self, children):
        for name, proc in children.items():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, proc in children.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.stdout.write(f"[run_all] {name} stopped.")
