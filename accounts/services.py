import re

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import Account, Plan, User
from accounts.selectors import plan_get
from qmailing.errors import Conflict, Invalid


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
    from domains.services import shared_domain_get
    from mailboxes.services import mailbox_create

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
        account = Account.objects.create(name=(account_name or full_name or email).strip()[:120], plan=plan_get(code=Plan.FREE))
        user = User.objects.create_user(email=email, password=password, full_name=full_name, account=account)
        shared = shared_domain_get()
        mailbox_create(account=account, domain=shared, local_part=_first_free_local_part(email.split("@")[0], shared),
                       display_name=full_name)
    return user


def account_set_plan(*, account, plan_code):
    account.plan = plan_get(code=plan_code)
    account.save(update_fields=["plan"])
    return account
