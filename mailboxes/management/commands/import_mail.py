import shlex
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mailboxes.inbound.importing import ImportSource, SkipReport, Skipped, printable
from mailboxes.inbound.ingest import email_ingest, ingest_batch
from mailboxes.models import Folder
from mailboxes.selectors import mailbox_by_address
from core.errors import AppError, LimitReached

# Bounds the report for an archive with very many Maildir subfolders.
LEFT_OUT_LINES = 20


class Command(BaseCommand):
    help = ("Import mail into a hosted mailbox through the normal ingest path: an mbox file, one message file, "
            "a Maildir, or a folder of message files (judged by content, whatever their names).")

    def add_arguments(self, parser):
        parser.add_argument("address", help="the hosted mailbox, e.g. sales@brand.example")
        parser.add_argument("path", help="an mbox file, a message file, a Maildir, or a folder of these")
        parser.add_argument("--folder", default=Folder.INBOX, choices=Folder.values)
        parser.add_argument("--read", action="store_true",
                            help="mark all imported mail as read (otherwise a Maildir's seen flag is kept)")
        parser.add_argument("--batch", type=int, default=1, metavar="N",
                            help="commit every N messages instead of each one (faster for big archives); "
                                 "a message that fails is still skipped on its own")

    def handle(self, *args, address, path, folder, read, batch, **options):
        mailbox = mailbox_by_address(address=address)
        if mailbox is None:
            raise CommandError(f"{address} is not a mailbox hosted here.")
        path = Path(path)
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        source = ImportSource(path)
        skipped = SkipReport()
        imported = with_defects = failed = 0
        stopped = False
        bar = tqdm(total=source.total, unit="msg", desc="importing", disable=source.total == 0)
        pending = iter(source)
        while not stopped:
            taken = 0
            # A batch is one transaction; each message inside it is its own savepoint (see ingest_batch).
            with ingest_batch() if batch > 1 else nullcontext():
                for item in islice(pending, batch):
                    taken += 1
                    if bar.total != source.total:  # an mbox was opened and its messages counted
                        bar.total = source.total
                        bar.refresh()
                    bar.update()
                    if isinstance(item, Skipped):
                        skipped.add(item)
                        continue
                    try:
                        # Imported mail sorts by its own Date header, not by the moment of the import.
                        email = email_ingest(mailbox=mailbox, raw=item.raw, folder=folder,
                                             is_read=read or item.seen, imported=True)
                    except LimitReached as error:
                        failed += 1
                        self.stderr.write(f"{printable(item.label)}: {error.detail} Stopping.")
                        stopped = True
                        break
                    except (AppError, OSError) as error:
                        failed += 1
                        self.stderr.write(f"{printable(item.label)}: {getattr(error, 'detail', error)}")
                        continue
                    imported += 1
                    with_defects += bool(email.defects)
            stopped = stopped or taken < batch
        bar.close()
        self.stdout.write(f"imported {imported}, with defects {with_defects}, failed {failed}, "
                          f"skipped {skipped.count} (of {source.total})")
        for line in skipped.lines():
            self.stdout.write(line)
        self._report_left_out(source.left_out, address)

    def _report_left_out(self, left_out, address):
        for folder in left_out[:LEFT_OUT_LINES]:
            command = ["python", "manage.py", "import_mail", address, str(folder.path)]
            if folder.suggested_folder != Folder.INBOX:
                command += ["--folder", folder.suggested_folder]
            messages = f"{folder.messages:,} message" + ("" if folder.messages == 1 else "s")
            self.stdout.write(f"not imported: Maildir folder {printable(folder.path.name)} ({messages}); "
                              f"import it on its own: {printable(shlex.join(command))}")
        if len(left_out) > LEFT_OUT_LINES:
            self.stdout.write(f"not imported: {len(left_out) - LEFT_OUT_LINES:,} more Maildir folders")
