"""Tools of the tests that run real processes and servers: free ports, waiting for a port, stopping a process (the
one definition of each), a TCP proxy the test can cut and restore, real processes killed with SIGKILL."""

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from django.conf import settings


def free_port():
    """A loopback TCP port nobody listens on now: every server a test starts takes one (xdist workers run side by side)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port, process, timeout=30, what="the server"):
    """Until `process` listens on `port`; fails the test at once if the process exits, or after `timeout` s."""
    from tests.timing import wait_until

    def listening():
        assert process.poll() is None, f"{what} exited early (code {process.returncode})"
        return port_open(port)

    wait_until(listening, timeout, f"{what} listening on port {port}", interval=0.1)


def stop_process(process, sig=signal.SIGTERM, timeout=20, group=False):
    """Stop `process` with `sig` (to its whole process group with group=True), waiting up to `timeout` s; then SIGKILL."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()


@contextmanager
def daphne(env, log_path, stop_signal=signal.SIGINT):
    """The production server, `daphne qmailing.asgi:application`, as a subprocess on a free port; yields its base
    URL and stops it with `stop_signal` (SIGINT or SIGTERM: a clean shutdown) on the way out. As run_all does, the base URL names the
    address served (the MCP Host check is exact, port included). Its output goes to `log_path`."""
    port = free_port()
    env = {**env, "QMAILING_BASE_URL": f"http://127.0.0.1:{port}"}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                    "qmailing.asgi:application"], cwd=settings.BASE_DIR, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, what="daphne")
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process, stop_signal, timeout=20)


class TcpProxy:
    """127.0.0.1:<port> forwarded to a target; `down()` refuses new connections and cuts the open ones, `up()`
    listens again on the same port. What a broker behind a failing network looks like to its clients."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.listener = None
        self.connections = []
        self.lock = threading.Lock()

    def up(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()
        return self

    def down(self):
        listener, self.listener = self.listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self.lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        return self

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass


def redis_url_through(proxy):
    """REDIS_URL of this test run, reached through `proxy` (same database number)."""
    database = settings.REDIS_URL.rstrip("/").rsplit("/", 1)[-1]
    return f"redis://127.0.0.1:{proxy.port}/{database if database.isdigit() else 0}"


def redis_port():
    from urllib.parse import urlsplit

    return urlsplit(settings.REDIS_URL).port or 6379


class SmtpServer:
    """`manage.py run_smtp` in a process group of its own: started, SIGKILLed, started again on the same port."""

    def __init__(self, env, log_path):
        self.port = free_port()
        self.env = {**env, "QMAILING_SMTP_HOST": "127.0.0.1", "QMAILING_SMTP_PORT": str(self.port)}
        self.log_path = log_path
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "run_smtp"], cwd=settings.BASE_DIR, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        from tests.timing import wait_until

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"run_smtp exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            return port_open(self.port)

        wait_until(listening, 60, "run_smtp listening", interval=0.2)
        return self

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, timeout=20, group=True)

    def send(self, sender, recipients, raw, timeout=30):
        """One SMTP transaction: True on 250, False on any refusal or broken connection (the sender retries)."""
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as client:
                client.sendmail(sender, recipients, raw)
            return True
        except (smtplib.SMTPException, OSError):
            return False


class Worker:
    """`celery -A qmailing worker` (prefork) in a process group of its own, so SIGKILL takes it whole: the
    parent and its pool children at once, with no acknowledgement, no rejection and no clean-up."""

    def __init__(self, name, env, log_path, *, queues="celery", concurrency=1):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "qmailing", "worker", "--pool", "prefork",
             "--concurrency", str(concurrency), "-Q", queues, "--loglevel", "INFO", "--without-mingle",
             "--without-gossip", "--without-heartbeat", "--hostname", f"{name}-{os.getpid()}-{time.time_ns()}@localhost"],
            cwd=settings.BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        from tests.timing import wait_until

        wait_until(lambda: self.proc.poll() is not None or " ready." in log_path.read_text(errors="replace"), 60,
                   f"worker {name} ready (log: {log_path})", interval=0.1)
        if self.proc.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-3000:])

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        stop_process(self.proc, timeout=30, group=True)
        if not self.log.closed:
            self.log.close()


def child_env(database_env, **extra):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(database_env, DJANGO_SETTINGS_MODULE="qmailing.settings", PYTHONUNBUFFERED="1",
               QMAILING_MEDIA_ROOT=str(settings.MEDIA_ROOT),  # the test's own media folder (tests/conftest.py)
               QMAILING_DNS_RESOLVERS=",".join(settings.QMAILING_DNS_RESOLVERS), QMAILING_DNS_TIMEOUT="1")
    env.update({key: str(value) for key, value in extra.items()})
    return env
