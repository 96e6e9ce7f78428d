import hashlib
import math
import re

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import Account, Plan, User
from accounts.selectors import plan_get
from qmailing import ratelimit
from qmailing.errors import Conflict, Invalid, RateLimited


def _first_free_local_part(base, domain):
    from mailboxes.addresses import ROLE_NAMES, SYSTEM_NAMES
    from mailboxes.models import Mailbox

    base = re.sub(r"[^a-z0-9._-]", "", base.lower())
    base = re.sub(r"\.{2,}", ".", base)[:48].strip(".") or "user"  # cut first: the cut may end on a dot
    if base in ROLE_NAMES or base in SYSTEM_NAMES:
        base = f"{base}-user"
    candidate, n = base, 1
    while Mailbox.objects.filter(domain=domain, local_part=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


def account_signup(*, email, password, full_name="", account_name=""):
    """Create a person, their account on FREE, and one mailbox on the shared domain."""
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
    return user


def _account_with_mailbox(*, email, full_name, account_name=""):
    """A new account on FREE with one mailbox on the shared domain, named after `email`; inside the caller's transaction."""
    from domains.services import shared_domain_get
    from mailboxes.services import mailbox_create

    account = Account.objects.create(name=(account_name or full_name or email).strip()[:120], plan=plan_get(code=Plan.FREE))
    shared = shared_domain_get()
    mailbox_create(account=account, domain=shared, local_part=_first_free_local_part(email.split("@")[0], shared),
                   display_name=full_name)
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
    account.plan = plan_get(code=plan_code)
    account.save(update_fields=["plan"])
    return account


def user_authenticate(*, request, email, password):
    """The password check behind every sign-in form (dashboard and admin): the user, or None when they do not match.

    Throttled per email tried and per client IP (`QMAILING_SIGNIN_FAILURES_PER_ACCOUNT` / `_PER_IP` failures per
    `QMAILING_SIGNIN_WINDOW_SECONDS`). Each check takes an attempt from both budgets before the password is looked
    at, so concurrent guesses cannot overshoot, and a successful sign-in gives its attempt back, so the budgets
    count failures. Over either budget this raises RateLimited, even for the right password, in the same words
    whether or not the account exists.
    """
    email = (email or "").strip().lower()
    window = settings.QMAILING_SIGNIN_WINDOW_SECONDS
    budgets = [
        (f"signin:email:{hashlib.sha256(email.encode()).hexdigest()}", settings.QMAILING_SIGNIN_FAILURES_PER_ACCOUNT),
        (f"signin:ip:{ratelimit.client_ip(request)}", settings.QMAILING_SIGNIN_FAILURES_PER_IP),
    ]
    taken = []
    for key, limit in budgets:
        allowed, retry_after = ratelimit.hit(key, limit=limit, window_seconds=window)
        taken.append(key)
        if not allowed:
            for earlier in taken:  # no password was checked, so this attempt costs nothing
                ratelimit.give_back(earlier)
            minutes = math.ceil(retry_after / 60)
            raise RateLimited(f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                              retry_after=retry_after)
    user = authenticate(request, username=email, password=password)
    if user is not None:
        for key in taken:
            ratelimit.give_back(key)
    return user


def password_reset_throttle(*, request, email):
    """Count one password-reset request against the address typed and the client IP (`QMAILING_PASSWORD_RESETS_PER_EMAIL`
    / `_PER_IP` per `QMAILING_SIGNIN_WINDOW_SECONDS`); RateLimited over either. The budgets are per address typed,
    not per account, and the words are the same either way, so the answer never tells whether an account exists."""
    email = (email or "").strip().lower()
    budgets = [
        (f"reset:email:{hashlib.sha256(email.encode()).hexdigest()}", settings.QMAILING_PASSWORD_RESETS_PER_EMAIL),
        (f"reset:ip:{ratelimit.client_ip(request)}", settings.QMAILING_PASSWORD_RESETS_PER_IP),
    ]
    for key, limit in budgets:
        allowed, retry_after = ratelimit.hit(key, limit=limit, window_seconds=settings.QMAILING_SIGNIN_WINDOW_SECONDS)
        if not allowed:
            minutes = math.ceil(retry_after / 60)
            raise RateLimited(f"Too many password reset requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
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
