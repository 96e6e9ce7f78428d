import math
from datetime import timedelta

from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, Plan, User
from accounts.selectors import plan_get
from accounts.signals import account_closing, account_created, account_deleting, account_grants_changed
from core.errors import Conflict, Invalid, RateLimited


def account_signup(*, email, password, full_name="", account_name=""):
    """Create a person, their account on FREE, and one mailbox on the shared domain.

    The programmatic path (`create_demo`, benchmarks, tests): whoever calls it vouches for the address, so it
    is recorded as verified. People signing up on the web go through allauth (accounts.adapter), which
    verifies the address by mail, and the account comes when it is confirmed (accounts.adapter.confirm_email).
    """
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise Invalid("Enter a valid email address.", field="email")
    email = User.objects.normalize_email(email).lower()
    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        raise Invalid(" ".join(exc.messages), errors={"password": list(exc.messages)})
    full_name = (full_name or "").strip()[:120]
    with transaction.atomic():
        if User.objects.filter(email__iexact=email).exists():
            raise Conflict("An account with this email already exists. Sign in instead.", code="email_taken")
        account = _account_with_mailbox(email=email, full_name=full_name, account_name=account_name)
        user = User.objects.create_user(email=email, password=password, full_name=full_name, account=account)
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def _account_with_mailbox(*, email, full_name, account_name=""):
    """A new account on FREE; inside the caller's transaction. The account_created receivers give it its first
    mailbox on the shared domain, named after `email` (mailboxes.receivers)."""
    account = Account.objects.create(name=(account_name or full_name or email).strip()[:120], plan=plan_get(code=Plan.FREE))
    account_created.send(sender=Account, account=account, email=email, full_name=full_name)
    return account


def account_provision_for_user(*, user):
    """Give a user who has no account (made with `createsuperuser`, or an operator's admin login) what sign-up
    gives everyone: an account on FREE and a mailbox on the shared domain. Idempotent: a user who already has
    an account (or got one in a concurrent request) keeps it. Returns the account."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.account_id is None:
            locked.account = _account_with_mailbox(email=locked.email, full_name=locked.full_name)
            locked.save(update_fields=["account"])
    user.account = locked.account
    return locked.account


def account_set_plan(*, account, plan_code):
    """Move the account to another plan; what its tokens may call changes with it (account_grants_changed)."""
    account.plan = plan_get(code=plan_code)
    account.save(update_fields=["plan"])
    account_grants_changed.send(sender=Account, account=account)
    return account


def signin_rate_limited():
    """The RateLimited error of a throttled sign-in; Retry-After is the whole window (allauth keeps no cheaper answer)."""
    retry_after = settings.QMAILING_SIGNIN_WINDOW_SECONDS
    minutes = math.ceil(retry_after / 60)
    return RateLimited(f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                       retry_after=retry_after)


def user_set_password(*, user, password):
    """Give `user` a new password (validated like a sign-up's); their other sessions end."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise Invalid(" ".join(exc.messages), errors={"password": list(exc.messages)})
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def account_close(*, account):
    """The first, quick half of deleting an account, done in the request: from here on nothing reaches it or
    acts for it. Its users are deactivated and signed out everywhere, its tokens stop working (they belong to
    those users), its mailboxes are suspended (new mail is refused at the door) and its webhooks revoked.
    account_delete (a background task) then removes everything."""
    with transaction.atomic():
        users = list(account.users.all())
        User.objects.filter(pk__in=[user.pk for user in users]).update(is_active=False)
        for session in UserSession.objects.filter(user__in=users):
            session.end()  # the session store's entry (any SESSION_ENGINE) and the row
        account_closing.send(sender=Account, account=account)  # mailboxes are suspended (mailboxes.receivers)
        account.webhook_endpoints.all().delete()  # nothing is delivered about the deletion itself
        Account.objects.filter(pk=account.pk).update(deletion_due_at=timezone.now())  # the record of the rest


def accounts_deletion_due(*, now=None):
    """Closed accounts whose deletion has waited longer than QMAILING_STUCK_AFTER_SECONDS (its task was lost, or
    is slow): each made due again one stuck period later, so a slow deletion is not piled on. Their ids."""
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.QMAILING_STUCK_AFTER_SECONDS)
    due = list(Account.objects.filter(deletion_due_at__lt=before).values_list("pk", flat=True)[:100])
    Account.objects.filter(pk__in=due).update(deletion_due_at=now)
    return due


def account_delete(*, account):
    """Delete a closed account and everything it owns: mail (rows, raw messages, attachment and draft files,
    search entries), mailboxes, groups, domains, webhooks, events, tokens and OAuth clients, and its users with
    their email addresses, second factors and sessions. Whatever file a cascade could still leave behind is
    swept from the account's storage folders once the rows are gone."""
    account_close(account=account)
    account_deleting.send(sender=Account, account=account)  # drafts and mailboxes, with their files (mailboxes.receivers)
    account_id = account.pk
    with transaction.atomic():
        for user in account.users.all():
            user.delete()  # cascades: OAuth applications and tokens, email addresses, authenticators, sessions list
        account.delete()  # cascades: domains with their DNS records, groups, threads, events, request logs
        transaction.on_commit(lambda: account_files_sweep(account_id=account_id))


ACCOUNT_FILE_FOLDERS = ("raw", "attachments", "drafts")  # mailboxes.models: every stored file is under <folder>/<account id>/


def account_files_sweep(*, account_id):
    """Delete every file stored under the account's folders (after its rows are gone)."""

    def sweep(folder):
        try:
            folders, files = default_storage.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in files:
            default_storage.delete(f"{folder}/{name}")
        for child in folders:
            sweep(f"{folder}/{child}")

    for root in ACCOUNT_FILE_FOLDERS:
        sweep(f"{root}/{account_id}")
