"""OAuth applications the account's people authorised (Claude.ai and other clients that run the OAuth flow).

An application is listed while it holds something live for the account: an unexpired access token, a refresh
token that was not revoked, or an unexpired authorization code (Grant). Personal tokens are DOT AccessTokens
too, but their applications (accounts.tokens._client_application) have no redirect URI: they can never run an
authorization flow, which is how this module tells the two apart. Those tokens are listed and revoked one by
one under "Tokens" instead.

Scoped to the account, like the token list: every person of an account manages the access to its mail.
"""

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model, get_application_model, get_grant_model, get_refresh_token_model,
)

from accounts.models import RequestLog
from core.errors import NotFound

NOT_FOUND = "No OAuth app holds access to your account under this id."


def token_from_oauth_app(access_token):
    """Whether `access_token` came from an OAuth authorization (its app has a redirect URI), not a personal token."""
    application = getattr(access_token, "application", None)
    return application is not None and bool(application.redirect_uris.strip())


def _live_access_tokens(account, now):
    return (get_access_token_model().objects.filter(user__account=account, expires__gt=now,
                                                    application__isnull=False)
            .exclude(application__redirect_uris=""))


def _live_refresh_tokens(account):
    return (get_refresh_token_model().objects.filter(user__account=account, revoked__isnull=True)
            .exclude(application__redirect_uris=""))


def _live_grants(account, now):
    return get_grant_model().objects.filter(user__account=account, expires__gt=now).exclude(application__redirect_uris="")


@dataclass
class OAuthApp:
    id: int
    name: str
    redirect_host: str
    scopes: list = field(default_factory=list)
    authorised_at: datetime | None = None
    last_used: datetime | None = None
    access_tokens: int = 0
    people: list = field(default_factory=list)
    # The addresses its tokens are limited to (their union), or None when one reaches every mailbox; empty with
    # mailboxes_known False when it holds no access token to read a limit from (only a code or a refresh token).
    mailbox_addresses: list | None = field(default_factory=list)
    mailboxes_known: bool = False


def oauth_app_list(*, account, now=None):
    """The OAuth applications holding live access for `account`, most recently authorised first.

    Each is an OAuthApp: name, the host of its redirect URI (tells a look-alike name apart), the scopes it
    holds (the union over its live tokens and pending codes), when it was authorised (the start of its oldest
    live refresh-token family, or its oldest live token or code), when it last called (request log, 30 days)
    and the emails of the people who authorised it. A constant number of queries, whatever the number of apps.
    """
    now = now or timezone.now()
    access = list(_live_access_tokens(account, now).values("id", "application_id", "scope", "created", "user__email"))
    refresh = list(_live_refresh_tokens(account).values(
        "application_id", "created", "token_family", "access_token_id", "access_token__scope", "user__email"))
    grants = list(_live_grants(account, now).values("application_id", "scope", "created", "user__email"))
    app_ids = {row["application_id"] for row in access + refresh + grants}
    if not app_ids:
        return []
    applications = get_application_model().objects.in_bulk(app_ids)
    families = {row["token_family"] for row in refresh if row["token_family"]}
    family_start = dict(
        get_refresh_token_model().objects.filter(user__account=account, token_family__in=families)
        .values("token_family").annotate(first=Min("created")).values_list("token_family", "first")
    ) if families else {}
    token_ids = {row["id"] for row in access} | {row["access_token_id"] for row in refresh if row["access_token_id"]}
    last_call = dict(
        RequestLog.objects.filter(account=account, token_id__in=token_ids).values("token_id")
        .annotate(last=Max("created_at")).values_list("token_id", "last")
    ) if token_ids else {}

    # Each live access token's mailbox limit (kept by mailboxes as TokenMailboxLimit; read through the relation).
    limits = {}
    for token_id, limited, local_part, domain in (
            get_access_token_model().objects.filter(pk__in=token_ids)
            .values_list("pk", "mailbox_limit__pk", "mailbox_limit__mailboxes__local_part",
                         "mailbox_limit__mailboxes__domain__name")):
        addresses = limits.setdefault(token_id, set() if limited else None)
        if addresses is not None and local_part:
            addresses.add(f"{local_part}@{domain}")

    apps = {}
    for app_id in app_ids:
        application = applications.get(app_id)
        if application is None:  # deleted between the queries
            continue
        uris = application.redirect_uris.split()
        apps[app_id] = OAuthApp(id=app_id, name=application.name or "", redirect_host=urlsplit(uris[0]).netloc if uris else "")

    def note(app, *, scope, started, token_id=None, email=""):
        app.scopes = sorted(set(app.scopes) | set((scope or "").split()))
        app.authorised_at = min(filter(None, (app.authorised_at, started)), default=None)
        used = last_call.get(token_id)
        if used and (app.last_used is None or used > app.last_used):
            app.last_used = used
        if email and email not in app.people:
            app.people.append(email)

    for row in access:
        if row["application_id"] in apps:
            apps[row["application_id"]].access_tokens += 1
            note(apps[row["application_id"]], scope=row["scope"], started=row["created"], token_id=row["id"],
                 email=row["user__email"])
    for row in refresh:
        if row["application_id"] in apps:
            note(apps[row["application_id"]], scope=row["access_token__scope"],
                 started=family_start.get(row["token_family"], row["created"]), token_id=row["access_token_id"],
                 email=row["user__email"])
    for row in grants:
        if row["application_id"] in apps:
            note(apps[row["application_id"]], scope=row["scope"], started=row["created"], email=row["user__email"])
    for row in access + [{"id": row["access_token_id"], "application_id": row["application_id"]} for row in refresh]:
        app = apps.get(row["application_id"])
        if app is None or row["id"] not in limits:
            continue
        addresses = limits[row["id"]]
        app.mailbox_addresses = (None if addresses is None or app.mailbox_addresses is None
                                 else sorted(set(app.mailbox_addresses) | addresses))
        app.mailboxes_known = True
    return sorted(apps.values(), key=lambda app: (app.authorised_at or now, app.id), reverse=True)


def access_oauth_app(*, account, application_id, now=None):
    """The OAuthApp `application_id` if it holds live access for `account`; NotFound otherwise (also for
    another account's app, a personal-token client, and an id that is not a number)."""
    if not str(application_id).isdigit():
        raise NotFound(NOT_FOUND)
    for app in oauth_app_list(account=account, now=now):
        if app.id == int(application_id):
            return app
    raise NotFound(NOT_FOUND)


def oauth_app_revoke(*, account, application_id):
    """Revoke everything `application_id` holds for `account`: refresh tokens (marked revoked, as DOT does, so
    a replay is recognised), access tokens (deleted: the very next call is a 401) and pending authorization
    codes. The app must sign the person in and ask for consent again to come back.

    Returns {"app": OAuthApp, "access_tokens": n, "refresh_tokens": n, "grants": n}. NotFound if the app holds
    no live access for this account.
    """
    app = access_oauth_app(account=account, application_id=application_id)
    mine = {"user__account": account, "application_id": app.id}
    with transaction.atomic():
        refresh_tokens = 0
        for refresh_token in get_refresh_token_model().objects.filter(**mine, revoked__isnull=True):
            refresh_token.revoke()  # also deletes the access token it is bound to
            refresh_tokens += 1
        access_ids = list(get_access_token_model().objects.filter(**mine).values_list("id", flat=True))
        get_access_token_model().objects.filter(id__in=access_ids).delete()
        grants, _ = get_grant_model().objects.filter(**mine).delete()
    return {"app": app, "access_tokens": app.access_tokens, "refresh_tokens": refresh_tokens, "grants": grants}
