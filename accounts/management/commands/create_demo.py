import secrets

from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import account_set_plan, account_signup, user_set_password

DEMO_EMAIL = "demo@example.com"
# What earlier versions set for everyone: a demo account still using it gets a random password instead.
PUBLISHED_DEMO_PASSWORD = "demo-password-2026"


class Command(BaseCommand):
    help = ("Create (once) the demo account on PLUS, a superuser for the admin, with a random password printed once. "
            "For local use: scripts/run calls it.")

    def add_arguments(self, parser):
        parser.add_argument("--new-password", action="store_true", help="give the demo account a new random password and print it")

    def handle(self, *args, new_password=False, **options):
        user = User.objects.filter(email=DEMO_EMAIL).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)
            user = account_signup(email=DEMO_EMAIL, password=password, full_name="Demo User", account_name="Demo")
            account_set_plan(account=user.account, plan_code="PLUS")
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        elif new_password or user.check_password(PUBLISHED_DEMO_PASSWORD):
            password = secrets.token_urlsafe(12)
            user_set_password(user=user, password=password)
        mailbox = user.account.mailboxes.select_related("domain").first()
        where = f" (plan {user.account.plan.code}, admin too)" + (f", mailbox {mailbox.address}" if mailbox else "")
        if password:
            self.stdout.write(f"Demo account: {DEMO_EMAIL} / {password}{where}")
            self.stdout.write("This password is shown once; `python manage.py create_demo --new-password` makes a new one.")
        else:
            self.stdout.write(f"Demo account: {DEMO_EMAIL}{where}; its password was shown when it was made "
                              "(`python manage.py create_demo --new-password` makes a new one).")
