from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.scopes import SCOPES
from accounts.tokens import token_issue, token_mailbox_addresses
from core.errors import AppError


class Command(BaseCommand):
    help = "Issue a personal API/MCP token for the user with EMAIL and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--client", required=True, help='The client it is for, e.g. "Claude Desktop".')
        parser.add_argument("--scopes", required=True, help=f"Space-separated, from: {' '.join(SCOPES)}.")
        parser.add_argument("--mailboxes", default=None, help=(
            "Limit the token to these mailboxes of the account: comma-separated addresses, e.g. "
            "a@x.example,b@x.example. Omit for every mailbox. A limited token cannot manage domains, webhooks "
            "or create mailboxes."))

    def handle(self, *args, email, client, scopes, mailboxes=None, **options):
        user = User.objects.select_related("account").filter(email__iexact=email.strip()).first()
        if user is None or user.account is None:
            raise CommandError(f"No account belongs to {email}.")
        mailbox_ids = None if mailboxes is None else _mailbox_ids(user.account, mailboxes)
        try:
            plaintext, access_token = token_issue(account=user.account, user=user, client=client, scopes=scopes,
                                                  mailbox_ids=mailbox_ids)
        except AppError as exc:
            raise CommandError(exc.detail)
        limit = "every mailbox" if mailboxes is None else ", ".join(token_mailbox_addresses(access_token))
        self.stderr.write(f"Token {access_token.pk} for {user.email} ({client}), scopes {access_token.scope}, "
                          f"mailboxes: {limit}, expires {access_token.expires:%Y-%m-%d}. It is shown once; "
                          "store it now:")
        self.stdout.write(plaintext)


def _mailbox_ids(account, addresses):
    """The ids of the account's mailboxes with these comma-separated addresses; CommandError naming any other.
    (Read through the account's mailboxes relation: accounts imports nothing of the mailboxes app.)"""
    wanted = {address.strip().lower() for address in addresses.split(",") if address.strip()}
    if not wanted:
        raise CommandError("--mailboxes needs at least one address (omit it for every mailbox).")
    mine = {mailbox.address.lower(): mailbox.pk for mailbox in account.mailboxes.select_related("domain")}
    unknown = sorted(wanted - set(mine))
    if unknown:
        raise CommandError(f"No mailbox {', '.join(unknown)} in the account of this user.")
    return [mine[address] for address in sorted(wanted)]
