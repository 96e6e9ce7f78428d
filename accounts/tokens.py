"""Personal access tokens, stored as django-oauth-toolkit AccessTokens.

Every token QMailing hands out, personal (Settings → Developers, `issue_token`) or from the OAuth flow,
is a DOT `AccessToken`: one table, one lookup (by SHA-256 checksum; with RFC 9700 token storage the
plaintext is never written), one revocation path. A personal token belongs to a DOT `Application` named
after the client it was issued for ("Claude Desktop", "Cursor", …), one per (account, client name),
made on first use; its `user` is the person who issued it, and the account is that user's account.

Format (`ACCESS_TOKEN_GENERATOR`, so OAuth-issued tokens look the same):

    qm_live_ + 30 base62 characters (178 random bits) + 6 base62 characters of CRC32(random part)

The checksum lets a secret scanner, and `token_format_ok`, tell a real token from a typo or a random
string without a database lookup.
"""

import hashlib
import secrets
import zlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.template.defaultfilters import pluralize
from oauth2_provider.models import get_access_token_model, get_application_model, set_token_value

from accounts.models import Account
from accounts.scopes import SCOPES, unknown_scopes
from accounts.signals import account_grants_changed, token_issued
from core.errors import Conflict, Invalid, NotFound

ACCESS_TOKEN_PREFIX = "qm_live_"
REFRESH_TOKEN_PREFIX = "qm_refresh_"
RANDOM_LENGTH = 30  # 30 × log2(62) ≈ 178.6 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_CLIENT_NAME = 80
TOKEN_LIMIT_REACHED = "token_limit_reached"


def _base62(number, width):
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(random_part):
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def _new_token(prefix):
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return f"{prefix}{random_part}{_checksum(random_part)}"


def access_token_generator(request=None, *args, **kwargs):
    """DOT's ACCESS_TOKEN_GENERATOR (oauthlib calls it with the request)."""
    return _new_token(ACCESS_TOKEN_PREFIX)


def refresh_token_generator(request=None, *args, **kwargs):
    """DOT's REFRESH_TOKEN_GENERATOR: the same shape with its own prefix, so the two are never confused."""
    return _new_token(REFRESH_TOKEN_PREFIX)


def token_format_ok(token, *, prefix=ACCESS_TOKEN_PREFIX):
    """Whether `token` has the shape and checksum of a token we issue; offline, no database."""
    if not isinstance(token, str) or not token.startswith(prefix):
        return False
    body = token[len(prefix):]
    if len(body) != RANDOM_LENGTH + CHECKSUM_LENGTH or any(ch not in BASE62 for ch in body):
        return False
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return secrets.compare_digest(_checksum(random_part), checksum)


def clean_scopes(scopes):
    """A sorted list of known, distinct scopes from a list or a space-separated string; Invalid otherwise."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    scopes = sorted(set(scopes or ()))
    if not scopes:
        raise Invalid(f"Choose at least one scope: {', '.join(SCOPES)}.", field="scopes")
    unknown = unknown_scopes(scopes)
    if unknown:
        raise Invalid(f"Unknown scope{pluralize(len(unknown))} {', '.join(unknown)}; choose from {', '.join(SCOPES)}.", field="scopes")
    return scopes


def _client_application(*, account, user, client):
    """The DOT Application standing for `client` in this account, made on first use."""
    Application = get_application_model()
    existing = Application.objects.filter(user__account=account, name=client).order_by("id").first()
    if existing is not None:
        return existing
    # No redirect URI and authorization-code grant: it can never run an OAuth flow or mint tokens itself;
    # it only names the client that personal tokens were issued for.
    return Application.objects.create(
        user=user, name=client, client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris="", skip_authorization=False,
    )


def token_issue(*, account, user, client, scopes, mailbox_ids=None):
    """Issue a personal token for `user` of `account`, bound to `client`, with `scopes`, limited to the mailboxes
    `mailbox_ids` (None: every mailbox of the account; kept by mailboxes through accounts.signals.token_issued,
    Invalid for a mailbox that is not the account's).

    Returns (plaintext, access_token). The plaintext exists only in this return value: the database
    keeps its SHA-256 checksum. Show it once.

    An account holds at most QMAILING_MAX_TOKENS_PER_ACCOUNT live personal tokens (each has its own
    per-minute throttle, so unlimited tokens would be an unlimited rate); beyond it Conflict
    `token_limit_reached`. The count is the Developers page's token list (accounts.oauth_apps.
    personal_token_list below: unexpired, unrevoked, whoever of the account issued them), so what the message
    asks to revoke is what the page lists. OAuth-issued tokens do not count: each comes from a person's
    consent on the authorization page, a refresh replaces its token rather than adding one, and they are
    listed and revoked per app (accounts.oauth_apps.oauth_app_list).
    """
    if user.account_id != account.pk:
        raise NotFound("No such user in your account.")
    client = " ".join((client or "").split())
    if not client or len(client) > MAX_CLIENT_NAME:
        raise Invalid(f"Name the client the token is for, in at most {MAX_CLIENT_NAME} characters.", field="client")
    scopes = clean_scopes(scopes)
    AccessToken = get_access_token_model()
    plaintext = access_token_generator()
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()  # one count-then-insert at a time
        limit = settings.QMAILING_MAX_TOKENS_PER_ACCOUNT
        if personal_token_list(account=account).count() >= limit:
            raise Conflict(f"An account may hold {limit} personal tokens at a time. Revoke one you no longer use "
                           "under Settings → Developers, then issue this one.", code=TOKEN_LIMIT_REACHED)
        application = _client_application(account=account, user=user, client=client)
        access_token = AccessToken(
            user=user, application=application, scope=" ".join(scopes),
            expires=timezone.now() + timedelta(days=settings.QMAILING_PERSONAL_TOKEN_DAYS),
        )
        set_token_value(access_token, plaintext)
        access_token.save()
        token_issued.send(sender=AccessToken, access_token=access_token, account=account,
                          mailbox_ids=None if mailbox_ids is None else list(mailbox_ids))
    return plaintext, access_token


def token_list(*, account):
    """The account's live tokens (personal and OAuth-issued), newest first."""
    AccessToken = get_access_token_model()
    return (AccessToken.objects.filter(user__account=account, expires__gt=timezone.now())
            .select_related("application", "user").order_by("-created", "-id"))


def personal_token_list(*, account):
    """The account's live personal tokens (issued by the wizard or `issue_token`), newest first.

    OAuth-issued tokens are left out: they come and go with refreshes and are managed per app
    (accounts.oauth_apps.oauth_app_list).
    """
    return token_list(account=account).filter(Q(application__isnull=True) | Q(application__redirect_uris=""))


def token_revoke(*, account, token_id):
    """Revoke one of the account's tokens; the very next request with it is refused. NotFound if not theirs."""
    AccessToken = get_access_token_model()
    access_token = AccessToken.objects.filter(pk=token_id, user__account=account).first() if str(token_id).isdigit() else None
    if access_token is None:
        raise NotFound("No token with this id exists in your account.")
    refresh_token = getattr(access_token, "refresh_token", None)
    if refresh_token is not None:
        refresh_token.revoke()  # an OAuth token: its refresh token goes too, and takes the access token with it
    else:
        access_token.revoke()  # DOT deletes the row; account_grants_changed drops it from every cache
    account_grants_changed.send(sender=Account, account=account)


def token_alive(*, token_id) -> bool:
    """Whether the token with this id still admits calls (not revoked, not expired, its person active)."""
    return bool(token_ids_alive(token_ids=[token_id]))


def token_ids_alive(*, token_ids) -> set:
    """Which of `token_ids` still admit calls (token_alive for many, in one query: a fan-out checks once per event)."""
    ids = [int(token_id) for token_id in token_ids if str(token_id).isdigit()]
    if not ids:
        return set()
    rows = (get_access_token_model().objects.filter(pk__in=ids, user__is_active=True)
            .filter(expires__gt=timezone.now()).values_list("pk", flat=True))
    return set(rows)


def token_lookup(plaintext):
    """The AccessToken for a presented token, or None: one read by its checksum, no cache (agent.token_cache
    keeps the tokens that authenticated calls)."""
    return token_by_checksum(hashlib.sha256(plaintext.encode("utf-8")).hexdigest())


def token_by_checksum(checksum):
    """The AccessToken whose SHA-256 checksum is `checksum`, with its person, account, plan and application
    (one query), or None."""
    AccessToken = get_access_token_model()
    return (AccessToken.objects.select_related("user__account__plan", "application")
            .filter(token_checksum=checksum).order_by().first())


def token_mailbox_addresses(access_token):
    """The addresses of the mailboxes a token is limited to, sorted (an empty list when each was deleted), or
    None when it reaches every mailbox. Read through the reverse relation mailboxes keeps the limit under
    (mailboxes.models.TokenMailboxLimit); prefetch `mailbox_limit__mailboxes__domain` for a list."""
    try:
        limit = access_token.mailbox_limit
    except ObjectDoesNotExist:
        return None
    return sorted(mailbox.address for mailbox in limit.mailboxes.all())
