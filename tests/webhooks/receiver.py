"""A real HTTP receiver on loopback for webhook tests: records every request, answers as told, verifies signatures."""

import http.server
import socket
import threading
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """Answers each POST with `status` (and `headers`, after `delay` seconds); keeps (headers, body) of each."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.requests = []
        self.status, self.headers, self.delay = 204, {}, 0.0
        self._server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks/qmailing?source=test"

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                          "body": body.decode("utf-8")})
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verified(self, secret):
        """The JSON bodies of every request whose signature verifies with `secret` (the standardwebhooks package)."""
        bodies = []
        for request in self.requests:
            try:
                bodies.append(Webhook(secret).verify(request["body"], request["headers"]))
            except WebhookVerificationError:
                pass
        return bodies
