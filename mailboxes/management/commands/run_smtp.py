import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from mailboxes.inbound.smtp import smtp_controller


class Command(BaseCommand):
    help = "Run the inbound SMTP server (QMAILING_SMTP_HOST:QMAILING_SMTP_PORT) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.QMAILING_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.QMAILING_SMTP_PORT)

    def handle(self, *args, host, port, **options):
        controller = smtp_controller(host=host, port=port)
        controller.start()
        stop = threading.Event()
        # run_all stops its children with SIGTERM; treat it like Ctrl-C so the listener closes cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        limit = settings.QMAILING_SMTP_MAX_MESSAGE_BYTES
        self.stdout.write(f"SMTP server listening on {host}:{port} (max message {limit} bytes)")
        try:
            stop.wait()
        finally:
            controller.stop()
            self.stdout.write("SMTP server stopped")
