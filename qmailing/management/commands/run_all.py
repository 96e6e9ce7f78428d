"""Start every QMailing process in the foreground and stop them all together (Ctrl-C)."""

import contextlib
import ipaddress
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

MAX_RESTARTS = 5  # web-process restarts within RESTART_WINDOW_SECONDS before run_all gives up and stops
RESTART_WINDOW_SECONDS = 60


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


def free_loopback_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def web_table(host, port, web_workers):
    """The web processes: one daphne on the port, or N daphnes on loopback ports behind the front (qmailing.front).

    Web process `webN` gets its index in QMAILING_WEB_WORKER (child_environment): its MCP session ids carry it, by
    which the front sends a session's requests to it."""
    python = sys.executable
    if web_workers <= 1:
        return [("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "qmailing.asgi:application"])]
    ports = [free_loopback_port() for _ in range(web_workers)]
    table = [(f"web{index}", [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(worker_port),
                              "qmailing.asgi:application"]) for index, worker_port in enumerate(ports)]
    backends = ",".join(f"127.0.0.1:{worker_port}" for worker_port in ports)
    table.append(("front", [python, "-m", "qmailing.front", "--host", host, "--port", str(port),
                            "--backends", backends]))
    return table


def web_worker_index(name):
    """N for the web process named `webN` (several web processes), else None."""
    return int(name[3:]) if name.startswith("web") and name[3:].isdigit() else None


def child_environment(environment, name):
    index = web_worker_index(name)
    return environment if index is None else {**environment, "QMAILING_WEB_WORKER": str(index)}


def process_table(host, port, smtp_port=None, web_workers=1):
    python = sys.executable
    table = web_table(host, port, web_workers) + [
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
        parser.add_argument("--web-workers", type=int, default=1,
                            help="Web (daphne) processes; above 1 they sit on loopback ports behind one front on --port "
                                 "that keeps each MCP session on its process (about one per core; default 1).")

    def handle(self, *args, host, port, smtp_port=None, web_workers=1, **options):
        if web_workers < 1:
            raise CommandError("--web-workers must be at least 1")
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
        if web_workers > 1 and not settings.REDIS_URL:
            # Without Redis each process would count its own minute budgets, daily caps and sign-in throttles:
            # N processes would admit N times what a plan allows. One process needs no sharing.
            raise CommandError(f"--web-workers {web_workers} needs REDIS_URL: the web processes share rate limits, "
                               "the FREE daily cap and sign-in throttles through Redis. Set REDIS_URL, or run one "
                               "web process (the default).")
        commands = dict(process_table(host, port, smtp_port, web_workers=web_workers))

        def start(name):
            command = commands[name]
            proc = subprocess.Popen(command, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=child_environment(environment, name))
            children[name] = proc
            selector.register(proc.stdout, selectors.EVENT_READ, name)
            self.stdout.write(f"[run_all] started {name} (pid {proc.pid}): {' '.join(command[1:])}")

        for name in commands:
            start(name)
        partial = {}  # the unfinished last line of each child's output
        restarts = []  # when web processes were restarted: a crash loop stops everything instead
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
                    # Whatever the pipe holds, not one line per wake-up (a buffered reader's other lines would
                    # wait for the child's next output), and never blocked on a line a child has not ended yet.
                    data = os.read(key.fileobj.fileno(), 65536)
                    if data:
                        self._echo(key.data, partial, data)
                    else:
                        selector.unregister(key.fileobj)
                        self._echo(key.data, partial, b"\n" if partial.get(key.data) else b"")
                dead = [(name, proc.returncode) for name, proc in children.items() if proc.poll() is not None]
                now = time.monotonic()
                restarts[:] = [when for when in restarts if now - when < RESTART_WINDOW_SECONDS]
                if dead and web_worker_index(dead[0][0]) is not None and len(restarts) < MAX_RESTARTS:
                    # One of several web processes: the others keep serving (the front routes around it; its MCP
                    # sessions answer 404 and their clients open new ones), and it comes back.
                    name, code = dead[0]
                    self.stderr.write(f"[run_all] {name} exited with code {code}; restarting it.")
                    self._drain(selector, name, children[name], partial)
                    restarts.append(now)
                    start(name)
                    continue
                if dead:
                    name, code = dead[0]
                    self.stderr.write(f"[run_all] {name} exited with code {code}; stopping the others.")
                    exit_code = code or 1
                    break
        finally:
            self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _echo(self, name, partial, data):
        *lines, partial[name] = (partial.get(name, b"") + data).split(b"\n")
        for line in lines:
            self.stdout.write(f"{name:>6} | {line.decode('utf-8', 'replace').rstrip()}")

    def _drain(self, selector, name, proc, partial):
        """What a dead child still had to say, then forget its pipe."""
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(proc.stdout)
        self._echo(name, partial, proc.stdout.read() + b"\n")
        partial.pop(name, None)
        proc.stdout.close()

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
