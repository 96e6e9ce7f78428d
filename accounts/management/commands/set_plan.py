from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import account_set_plan
from core.errors import AppError


class Command(BaseCommand):
    help = "Move the account of the user with EMAIL to PLAN (FREE, PLUS, PRO, PRO_MAX)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("plan")

    def handle(self, *args, email, plan, **options):
        user = User.objects.select_related("account").filter(email__iexact=email.strip()).first()
        if user is None or user.account is None:
            raise CommandError(f"No account belongs to {email}.")
        try:
            account = account_set_plan(account=user.account, plan_code=plan)
        except AppError as exc:
            raise CommandError(exc.detail)
        self.stdout.write(f"{user.email}: account {account.name!r} is now on {account.plan.code}.")
