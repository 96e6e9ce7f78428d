from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import account_set_plan, account_signup

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-2026"


class Command(BaseCommand):
    help = "Create (once) the demo account on PLUS and a superuser for the admin, and print their logins."

    def handle(self, *args, **options):
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = account_signup(email=DEMO_EMAIL, password=DEMO_PASSWORD, full_name="Demo User", account_name="Demo")
            account_set_plan(account=user.account, plan_code="PLUS")
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        mailbox = user.account.mailboxes.select_related("domain").first()
        self.stdout.write(
            f"Demo account: {DEMO_EMAIL} / {DEMO_PASSWORD} (plan {user.account.plan.code}, admin too)"
            + (f", mailbox {mailbox.address}" if mailbox else "")
        )
