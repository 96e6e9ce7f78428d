from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mailboxes.inbound.ingest import DERIVED_FIELDS, email_rederive
from mailboxes.models import Email
from mailboxes.selectors import mailbox_by_address


class Command(BaseCommand):
    help = ("Recompute stored mail's derived fields (" + ", ".join(DERIVED_FIELDS) + ") from each raw message, "
            "so parsing fixes reach mail stored before them. Safe to run again; it can be stopped and resumed.")

    def add_arguments(self, parser):
        parser.add_argument("--mailbox", metavar="ADDRESS", help="only this hosted mailbox")
        parser.add_argument("--batch", type=int, default=500, metavar="N", help="emails read per query (default 500)")
        parser.add_argument("--after", metavar="EMAIL_ID", help="resume after this email id (printed on interrupt)")

    def handle(self, *args, mailbox, batch, after, **options):
        emails = Email.objects.order_by("pk")
        if mailbox:
            found = mailbox_by_address(address=mailbox)
            if found is None:
                raise CommandError(f"{mailbox} is not a mailbox hosted here.")
            emails = emails.filter(mailbox=found)
        if after:
            emails = emails.filter(pk__gt=after)
        total, changed, failed, last = emails.count(), 0, 0, None
        progress = tqdm(total=total, unit="msg", disable=total == 0, file=self.stdout)
        try:
            while True:
                page = list((emails.filter(pk__gt=last) if last else emails)[:max(1, batch)])
                for email in page:
                    try:
                        changed += email_rederive(email=email)
                    except Exception as exc:  # a raw file gone from storage: report it, go on
                        failed += 1
                        self.stderr.write(f"{email.pk}: {type(exc).__name__}: {exc}")
                    last = email.pk
                    progress.update(1)
                if len(page) < max(1, batch):
                    break
        except KeyboardInterrupt:
            raise CommandError(f"interrupted; resume with --after {last}")
        finally:
            progress.close()
        self.stdout.write(f"rederived {total} email(s): {changed} changed, {failed} failed")
