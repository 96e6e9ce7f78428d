import mailbox as mailbox_formats
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mailboxes.inbound.ingest import email_ingest, ingest_batch
from mailboxes.models import Folder
from mailboxes.selectors import mailbox_by_address
from qmailing.errors import AppError, LimitReached


def _messages(path):
    """(label, raw bytes) for each message of an mbox file or a folder of .eml files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")
        return len(files), ((str(p), p.read_bytes()) for p in files)
    box = mailbox_formats.mbox(str(path), create=False)
    keys = list(box.keys())
    return len(keys), ((f"{path.name}#{index}", box.get_bytes(key)) for index, key in enumerate(keys))


class Command(BaseCommand):
    help = "Import an mbox file or a folder of .eml files into a hosted mailbox, through the normal ingest path."

    def add_arguments(self, parser):
        parser.add_argument("address", help="the hosted mailbox, e.g. sales@brand.example")
        parser.add_argument("path", help="an mbox file or a folder of .eml files")
        parser.add_argument("--folder", default=Folder.INBOX, choices=Folder.values)
        parser.add_argument("--read", action="store_true", help="mark imported mail as read")
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
        try:
            total, messages = _messages(path)
        except Exception as error:
            raise CommandError(f"{path} cannot be read as an mbox file: {error}")
        imported = with_defects = failed = 0
        stopped = False
        pending = iter(tqdm(messages, total=total, unit="msg", desc="importing", disable=total == 0))
        while not stopped:
            taken = 0
            # A batch is one transaction; each message inside it is its own savepoint (see ingest_batch).
            with ingest_batch() if batch > 1 else nullcontext():
                for label, raw in islice(pending, batch):
                    taken += 1
                    try:
                        # Imported mail sorts by its own Date header, not by the moment of the import.
                        email = email_ingest(mailbox=mailbox, raw=raw, folder=folder, is_read=read,
                                             use_header_date=True)
                    except LimitReached as error:
                        failed += 1
                        self.stderr.write(f"{label}: {error.detail} Stopping.")
                        stopped = True
                        break
                    except (AppError, OSError) as error:
                        failed += 1
                        self.stderr.write(f"{label}: {getattr(error, 'detail', error)}")
                        continue
                    imported += 1
                    with_defects += bool(email.defects)
            stopped = stopped or taken < batch
        self.stdout.write(f"imported {imported}, with defects {with_defects}, failed {failed} (of {total})")
