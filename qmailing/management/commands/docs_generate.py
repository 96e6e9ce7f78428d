"""Write the generated pages of docs/: the settings table, the event catalogue and the tool list."""

from django.core.management.base import BaseCommand

from qmailing.docgen import BASE_DIR, generated_pages


class Command(BaseCommand):
    help = ("Write docs/operations/configuration.md, docs/agents/events.md, docs/agents/tools.md and README.md's "
            "tool table from the settings' environment reads, the EventType enum and the operation registry.")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="Write nothing; exit with an error naming every page that is out of date.")

    def handle(self, *args, check=False, **options):
        stale = []
        for relative, text in generated_pages().items():
            path = BASE_DIR / relative
            current = path.read_text() if path.exists() else None
            if current == text:
                self.stdout.write(f"up to date: {relative}")
                continue
            stale.append(relative)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                self.stdout.write(f"wrote: {relative}")
        if check and stale:
            self.stderr.write(f"out of date: {', '.join(stale)}; run `python manage.py docs_generate`")
            raise SystemExit(1)
