from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.scopes import SCOPES
from accounts.tokens import token_issue
from core.errors import AppError


class Command(BaseCommand):
    help = "Issue a personal API/MCP token for the user with EMAIL and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--client", required=True, help='The client it is for, e.g. "Claude Desktop".')
        parser.add_argument("--scopes", required=True, help=f"Space-separated, from: {' '.join(SCOPES)}.")

    def handle(self, *args, email, client, scopes, **options):
        user = User.objects.select_related("account").filter(email__iexact=email.strip()).first()
        if user is None or user.account is None:
            raise CommandError(f"No account belongs to {email}.")
        try:
            plaintext, access_token = token_issue(account=user.account, user=user, client=client, scopes=scopes)
        except AppError as exc:
            raise CommandError(exc.detail)
        self.stderr.write(f"Token {access_token.pk} for {user.email} ({client}), scopes {access_token.scope}, "
                          f"expires {access_token.expires:%Y-%m-%d}. It is shown once; store it now:")
        self.stdout.write(plaintext)
