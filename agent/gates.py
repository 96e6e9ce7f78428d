"""The gates every agent call passes, REST or MCP, in the order docs/agents/rest.md lists (Gates), before any operation runs.

    actor = admit(authorization=request.headers.get("Authorization"), operation=op, headers=response_headers)

1. authentication: a Bearer token of our format, found by its checksum (agent.token_cache: in this process's
   cache, dropped everywhere the moment the product revokes the token or changes its grants; one read
   otherwise), not expired, with an active user who has an account; otherwise Unauthenticated (401).
2. throttle: QMAILING_TOKEN_REQUESTS_PER_MINUTE calls per token per minute; RateLimited (429).
3. plan: the operation's tool group must be in the account's plan; PlanRequired (402).
4. scope: the token must carry the operation's scope; ScopeMissing (403). An account-wide operation
   (Operation.account_wide) also needs a token for every mailbox; TokenLimited (403) otherwise.
5. daily cap: the plan's daily_request_cap per account per UTC day (FREE: 25); RateLimited (429) with
   Retry-After = seconds to midnight UTC. Charged last (agent.pipeline charges it once the arguments are
   valid too), so a call refused before its operation runs never uses up the day: fair to an agent that
   learns a tool is not in its plan.
Ownership (404) is the operation's own access_* helper, so it is checked against the object itself; for a token
limited to some mailboxes the Actor carries their ids (`mailbox_ids`), which those helpers and the list
selectors take, so a mailbox outside the set answers as another account's does.

Counters use core.ratelimit (Redis with REDIS_URL, in-process otherwise). `headers` receives
X-RateLimit-Limit/Remaining/Reset for the tightest budget that applied, on success and on refusal.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from accounts.oauth_apps import token_from_oauth_app
from accounts.scopes import EMAIL_SEND
from accounts.selectors import plan_lowest_with_group
from accounts.tokens import token_by_checksum, token_format_ok
from agent import oauth, token_cache
from agent.operations import registry
from core import ratelimit
from core.errors import AppError, PlanRequired, RateLimited, ScopeMissing, TokenLimited, Unauthenticated
from mailboxes.token_limits import token_mailbox_ids


@dataclass(frozen=True)
class Actor:
    """Who is calling: the account (the tenant every access_* helper restricts to), the person, the token.

    `mailbox_ids` is the set of mailbox ids the token is limited to (mailboxes.token_limits), None when it
    reaches every mailbox of the account: every selector an operation calls takes it with the account.
    """

    account: object
    user: object
    token: object
    scopes: frozenset
    mailbox_ids: frozenset | None = None


def now():
    return timezone.now()  # one seam for tests that need a given time of day


def authenticate(authorization, *, origin=None, cached_only=False):
    """The Actor for an Authorization header value, or Unauthenticated.

    `origin` (scheme://host of the request; QMAILING_BASE_URL by default) is the RFC 8707 audience check:
    a token bound to a resource that is not ours is refused, like a token with no user.

    With `cached_only` it touches no database, so an event loop may call it: None when the token is not in the
    process's cache (then call it again without, from a thread).
    """
    if not authorization:
        raise Unauthenticated("Send your token as `Authorization: Bearer qm_live_…`. "
                              "Issue one under Settings → Developers.")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token_format_ok(token):
        raise Unauthenticated("The Authorization header does not hold a QMailing token "
                              "(`Authorization: Bearer qm_live_…`). Check that it was copied whole.",
                              bearer_error="invalid_token")
    try:
        access_token, mailbox_ids, pending = token_cache.lookup(token, read=None if cached_only else _read_token)
    except token_cache.Miss:
        return None
    user = access_token.user if access_token is not None else None
    if (access_token is None or access_token.is_expired() or user is None or not user.is_active
            or user.account is None):
        raise Unauthenticated("This token is revoked or expired. Issue a new one under Settings → Developers.",
                              bearer_error="invalid_token")
    if not oauth.token_allows_origin(access_token, origin or settings.QMAILING_BASE_URL):
        raise Unauthenticated("This token was issued for another service, not for QMailing. "
                              "Connect again to get a token for this server.", bearer_error="invalid_token")
    token_cache.admit(pending, access_token, mailbox_ids)  # only a token that passed every check is kept
    return actor_of(access_token, mailbox_ids=mailbox_ids)


def _read_token(checksum):
    """A cache miss: the token (with its person, account, plan and application) and its mailbox limit."""
    access_token = token_by_checksum(checksum)
    if access_token is None:
        return None, None
    return access_token, token_mailbox_ids(token=access_token)


_UNREAD = object()


def actor_of(access_token, *, mailbox_ids=_UNREAD):
    """The Actor a live token acts as (its person's account, its scopes): what every gate and list reads.
    `mailbox_ids` when it is known already (authenticate); read otherwise."""
    user = access_token.user
    if mailbox_ids is _UNREAD:
        mailbox_ids = token_mailbox_ids(token=access_token)
    return Actor(account=user.account, user=user, token=access_token, scopes=frozenset(access_token.scope.split()),
                 mailbox_ids=mailbox_ids)


def actors_of_tokens(*, token_ids):
    """{token id: Actor} for the tokens among `token_ids` that still admit calls, in one query. A token that
    was replaced (an OAuth refresh or a new consent of the same app and person) stands for the newest live
    token of its app and person, since a session keeps going across a refresh (agent.mcp.http._principal):
    give (token id, application id, user id) triples for that. One query, and one more per replaced token."""
    AccessToken = get_access_token_model()
    live = (AccessToken.objects.select_related("user__account__plan", "application")
            .filter(user__is_active=True, user__account__isnull=False, expires__gt=now()))
    triples = [(int(token_id), application_id, user_id) for token_id, application_id, user_id in token_ids]
    found = {token.pk: actor_of(token) for token in live.filter(pk__in=[token_id for token_id, _, _ in triples])}
    for token_id, application_id, user_id in triples:
        if token_id not in found and application_id is not None:
            newest = live.filter(application_id=application_id, user_id=user_id).order_by("-created", "-pk").first()
            if newest is not None:
                found[token_id] = actor_of(newest)
    return found


def _seconds_to_midnight_utc(moment):
    moment = moment.astimezone(dt.timezone.utc)
    midnight = dt.datetime.combine(moment.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return max(1, int((midnight - moment).total_seconds()))


def _rate_headers(usage):
    return {"X-RateLimit-Limit": str(usage.limit), "X-RateLimit-Remaining": str(usage.remaining),
            "X-RateLimit-Reset": str(usage.reset)}


def throttle(actor, *, headers):
    """Count this call against the token's minute; RateLimited past it."""
    per_minute = settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE
    usage = ratelimit.hit_usage(f"api:token:{actor.token.pk}:minute", limit=per_minute, window_seconds=60)
    headers.update(_rate_headers(usage))
    if not usage.allowed:
        raise RateLimited(f"This token made more than {per_minute} requests in a minute. "
                          f"Wait {usage.reset} seconds and slow down.", retry_after=usage.reset)


def charge_daily(actor, *, headers):
    """Count this call against the account's day (plans with a daily cap); RateLimited past it. `headers` then
    reports whichever budget is closer to running out, the minute's (already there) or the day's."""
    cap = actor.account.plan.daily_request_cap
    if cap is None:
        return
    moment = now()
    to_midnight = _seconds_to_midnight_utc(moment)
    # The date in the key makes the window the UTC day, whenever its first request came.
    daily = ratelimit.hit_usage(f"api:account:{actor.account.pk}:day:{moment.date():%Y%m%d}", limit=cap,
                                window_seconds=to_midnight)
    daily = daily._replace(reset=to_midnight)
    minute_remaining = headers.get("X-RateLimit-Remaining")
    if minute_remaining is None or daily.remaining <= int(minute_remaining):
        headers.update(_rate_headers(daily))
    if not daily.allowed:
        raise RateLimited(f"Your {actor.account.plan.name} plan allows {cap} API and MCP requests a day, and "
                          f"today's are used up. They renew at midnight UTC, in {to_midnight} seconds; "
                          "upgrade for no daily cap.", retry_after=to_midnight, code="daily_cap_reached",
                          upgradeUrl=settings.QMAILING_UPGRADE_URL)


def meter(actor, *, headers):
    """Both budgets at once, the minute's then the day's (what a call that passed every other gate pays)."""
    throttle(actor, headers=headers)
    charge_daily(actor, headers=headers)


def plan_allows(actor, operation):
    """Whether the account's plan includes the operation's tool group (the plan gate's rule)."""
    return actor.account.plan.allows_group(operation.plan_group)


def scope_allows(actor, operation):
    """Whether the token carries the operation's scope (the scope gate's rule)."""
    return operation.scope in actor.scopes


def reach_allows(actor, operation):
    """Whether the token reaches what the operation acts on: an account-wide one needs a token for all mailboxes."""
    return not (operation.account_wide and actor.mailbox_ids is not None)


def allows(actor, operation):
    """Whether `authorize` would let `actor` call `operation` (no query: the Actor holds its plan, scopes and
    mailbox limit)."""
    return plan_allows(actor, operation) and scope_allows(actor, operation) and reach_allows(actor, operation)


def visible_operations(actor):
    """The operations `actor` is shown, in registry order: those its plan includes, its token's scopes allow and
    its mailbox limit reaches.

    Every interface that lists tools asks this one function (MCP tools/list, and whether a grant change
    alters what a session was shown), so a further limit on a token is added here once. Hiding is a courtesy,
    not the gate: a call of a hidden operation still goes through `authorize`, which says why it is refused.
    """
    return [operation for operation in registry().values() if allows(actor, operation)]


def authorize(actor, operation):
    """The plan gate, then the scope gate, for one operation."""
    plan = actor.account.plan
    if not plan_allows(actor, operation):
        required = plan_lowest_with_group(group=operation.plan_group)
        required_code = required.code if required else None
        raise PlanRequired(f"{operation.title} is not part of the {plan.name} plan. "
                           f"Upgrade to {required.name if required else 'a higher plan'} to use it.",
                           required_plan=required_code)
    if not scope_allows(actor, operation):
        error = ScopeMissing(scope_missing_detail(actor, operation), required_scopes=[operation.scope])
        # RFC 6750 §3.1, for a REST answer (an MCP tool result carries no headers).
        error.headers["WWW-Authenticate"] = f'Bearer realm="QMailing", error="insufficient_scope", scope="{operation.scope}"'
        raise error
    if not reach_allows(actor, operation):
        raise TokenLimited(f"{operation.title} acts on the whole account, and this token is limited to some "
                           "mailboxes. Use a token for all mailboxes (issue one under Settings → Developers, or "
                           "connect again choosing all mailboxes).")


# What a send refused for email:send leaves behind, by operation: "an agent drafts, a person sends".
NOTHING_SENT = {
    "qmailing_send_draft": "Nothing was sent: the draft stays in Drafts, waiting for a person to send it.",
    "qmailing_send_email": ("Nothing was sent and nothing was saved. To have a person send it, save it as a draft "
                            "with qmailing_create_draft (POST /api/v1/pub/mailboxes/{mailbox_id}/drafts, scope "
                            "email:write): it then waits in Drafts for a person to send."),
    "qmailing_forward_email": "Nothing was sent: a person can forward the email from QMailing.",
}


def scope_missing_detail(actor, operation):
    """The 403's words: what is missing, what the refused call left behind, and how this kind of token gets the
    scope: an OAuth app is reconnected and granted it on the consent page; a personal token is issued anew."""
    scope = operation.scope
    parts = [f"This token lacks the {scope} scope that {operation.title} needs."]
    if scope == EMAIL_SEND:
        parts.append(NOTHING_SENT.get(operation.name, "Nothing was sent."))
    developers = settings.QMAILING_BASE_URL + reverse("developers:index")
    if token_from_oauth_app(actor.token):
        application = actor.token.application
        name = application.name or "the app"
        first = "For it to send by itself" if scope == EMAIL_SEND else "To allow this"
        parts.append(f"{first}, reconnect {name} and grant {scope} on QMailing's consent page. "
                     f"The app is listed under Settings → Developers: {developers}#oauth-app-{application.pk}")
    else:
        parts.append(f"Issue a token with {scope} under Settings → Developers: {developers}#connect")
    return " ".join(parts)


def bearer_challenge(challenge, *, origin, resource_path):
    """`challenge` (RFC 6750) plus RFC 9728's resource_metadata and every scope, so a client can discover."""
    return (f'{challenge}, resource_metadata="{oauth.resource_metadata_url(origin, resource_path)}", '
            f'scope="{" ".join(oauth.all_scopes())}"')


def admit(*, authorization, operation, headers, origin=None, resource_path="/api/v1/pub"):
    """Run every gate for one call of `operation`; the Actor, or the first gate's AppError (with its headers).

    With `operation=None` only authentication and the throttle run: a transport that hands the call on to
    agent.pipeline, which runs the plan and scope gates and charges the daily cap itself.

    `origin` is the request's scheme://host and `resource_path` the protected resource called (/api/v1/pub
    or /mcp): they set the audience check and the 401's pointer to the protected-resource metadata.
    """
    origin = (origin or settings.QMAILING_BASE_URL).rstrip("/")
    actor = None
    try:
        actor = authenticate(authorization, origin=origin)
        throttle(actor, headers=headers)
        if operation is not None:
            authorize(actor, operation)
            charge_daily(actor, headers=headers)
    except AppError as error:
        if isinstance(error, Unauthenticated):
            error.headers["WWW-Authenticate"] = bearer_challenge(
                error.headers.get("WWW-Authenticate", "Bearer"), origin=origin, resource_path=resource_path)
        error.headers = {**headers, **error.headers}
        error.actor = actor  # who was refused (None before authentication), for the request log
        raise
    return actor
