import datetime as dt
import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from accounts.tokens import token_lookup, token_revoke
from agent import gates
from core.errors import PlanRequired, RateLimited, ScopeMissing, Unauthenticated
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.api_helpers import problem_of as _problem
from tests.conftest import make_user

LIST_MAILBOXES = "qmailing_list_mailboxes"
LIST_DOMAINS = "qmailing_list_domains"


@pytest.fixture
def list_mailboxes():
    return registry()[LIST_MAILBOXES]


# --- 1. authentication

def test_missing_token_is_401_with_a_bearer_challenge(client, owner, list_mailboxes):
    response = call(client, list_mailboxes)
    _problem(response, 401, "unauthenticated")
    from accounts.scopes import SCOPES

    assert response["WWW-Authenticate"] == (
        'Bearer realm="QMailing", '
        'resource_metadata="http://testserver/.well-known/oauth-protected-resource/api/v1/pub", '
        f'scope="{" ".join(sorted(SCOPES))}"')


@pytest.mark.parametrize("authorization", [
    "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token qm_live_x", "qm_live_abc", "Bearer qm_live_short",
    "Bearer not-a-token-at-all-but-quite-long-indeed-0000000", "Bearer qm_live_" + "A" * 36,
])
def test_malformed_authorization_is_401_invalid_token(client, owner, list_mailboxes, authorization):
    response = call(client, list_mailboxes, authorization=authorization)
    _problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_unknown_well_formed_token_is_401(client, owner, list_mailboxes):
    from accounts.tokens import access_token_generator

    _problem(call(client, list_mailboxes, token=access_token_generator()), 401, "unauthenticated")


def test_revocation_is_honoured_on_the_very_next_request(client, owner, list_mailboxes):
    token = token_for(owner)
    assert call(client, list_mailboxes, token=token).status_code == 200
    token_revoke(account=owner, token_id=token_lookup(token).pk)
    _problem(call(client, list_mailboxes, token=token), 401, "unauthenticated")


def test_expired_token_is_401(client, owner, list_mailboxes):
    token = token_for(owner)
    AccessToken.objects.filter(pk=token_lookup(token).pk).update(expires=timezone.now() - timedelta(seconds=1))
    _problem(call(client, list_mailboxes, token=token), 401, "unauthenticated")


def test_token_without_a_user_or_with_an_inactive_user_is_401(client, owner, list_mailboxes):
    token = token_for(owner)
    AccessToken.objects.filter(pk=token_lookup(token).pk).update(user=None)
    _problem(call(client, list_mailboxes, token=token), 401, "unauthenticated")
    second = token_for(owner)
    owner.users.update(is_active=False)
    _problem(call(client, list_mailboxes, token=second), 401, "unauthenticated")


# --- 2. per-token throttle

def test_the_301st_request_in_a_minute_is_429_with_retry_after(client, owner, list_mailboxes, settings):
    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 3
    token, other = token_for(owner), token_for(owner, client="Other client")
    remaining = []
    for _ in range(3):
        response = call(client, list_mailboxes, token=token)
        assert response.status_code == 200 and response["X-RateLimit-Limit"] == "3"
        remaining.append(response["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    response = call(client, list_mailboxes, token=token)
    body = _problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60 and body["retryAfter"] == int(response["Retry-After"])
    assert response["X-RateLimit-Remaining"] == "0" and 1 <= int(response["X-RateLimit-Reset"]) <= 60
    # Another token, even of the same account, has its own minute.
    assert call(client, list_mailboxes, token=other).status_code == 200


def _hammer(actor, *, attempts, threads):
    allowed, refused = [], []
    barrier = threading.Barrier(threads)

    def worker(count):
        barrier.wait()
        for _ in range(count):
            try:
                gates.meter(actor, headers={})
                allowed.append(1)
            except RateLimited:
                refused.append(1)

    per_thread = attempts // threads
    workers = [threading.Thread(target=worker, args=(per_thread,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(allowed), len(refused)


def _actor(account):
    return gates.authenticate(f"Bearer {token_for(account)}")


@pytest.mark.parametrize("store", [
    pytest.param("embedded", id="embedded"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
])
def test_exactly_300_of_many_concurrent_requests_pass_per_token(owner, outsider, settings, store):
    if store == "embedded":
        settings.REDIS_URL = ""
    actor, other = _actor(owner), _actor(outsider)
    allowed, refused = _hammer(actor, attempts=480, threads=16)
    assert (allowed, refused) == (300, 180)
    gates.meter(other, headers={})  # another tenant's token is untouched


# --- 3. FREE's daily cap

def _at(monkeypatch, hour, minute, second=0):
    moment = dt.datetime(2026, 3, 14, hour, minute, second, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(gates, "now", lambda: moment)


@pytest.mark.parametrize("store", [
    pytest.param("embedded", id="embedded"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
])
def test_free_accounts_26th_request_of_the_day_is_429_until_midnight_utc(client, free_account, monkeypatch, settings,
                                                                        list_mailboxes, store):
    if store == "embedded":
        settings.REDIS_URL = ""
    _at(monkeypatch, 23, 59, 0)
    token, same_account = token_for(free_account), token_for(free_account, client="Second")
    other_free = make_user("other-free@example.com", plan="FREE").account
    for number in range(25):
        response = call(client, list_mailboxes, token=token)
        assert response.status_code == 200, number
    assert response["X-RateLimit-Limit"] == "25" and response["X-RateLimit-Remaining"] == "0"
    response = call(client, list_mailboxes, token=token)
    body = _problem(response, 429, "daily_cap_reached")
    assert response["Retry-After"] == "60" and body["retryAfter"] == 60 and body["upgradeUrl"].startswith("http")
    assert response["X-RateLimit-Reset"] == "60"
    # The cap is per account: the account's other token is capped too; another account is not.
    _problem(call(client, list_mailboxes, token=same_account), 429, "daily_cap_reached")
    assert call(client, list_mailboxes, token=token_for(other_free)).status_code == 200
    # A new UTC day, a new budget.
    monkeypatch.setattr(gates, "now", lambda: dt.datetime(2026, 3, 15, 0, 0, 1, tzinfo=dt.timezone.utc))
    assert call(client, list_mailboxes, token=token).status_code == 200


def test_paid_plans_have_no_daily_cap(client, owner, list_mailboxes):
    token = token_for(owner)
    for _ in range(30):
        response = call(client, list_mailboxes, token=token)
    assert response.status_code == 200 and response["X-RateLimit-Limit"] == "300"


def test_retry_after_is_seconds_to_midnight_utc():
    noon = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.timezone.utc)
    assert gates._seconds_to_midnight_utc(noon) == 12 * 3600
    plus_two = dt.datetime(2026, 3, 14, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 21:30 UTC
    assert gates._seconds_to_midnight_utc(plus_two) == 2.5 * 3600


# --- 4, 5. plan, then scope; the order of all gates

def test_plan_gate_names_the_plan_and_the_upgrade_url(free_account):
    actor = _actor(free_account)
    with pytest.raises(PlanRequired) as caught:
        gates.authorize(actor, registry()[LIST_DOMAINS])
    assert caught.value.extra["requiredPlan"] == "PLUS" and caught.value.extra["upgradeUrl"].startswith("http")


def test_scope_gate_names_the_missing_scope(owner):
    actor = gates.authenticate(f"Bearer {token_for(owner, scopes='mailbox:read')}")
    with pytest.raises(ScopeMissing) as caught:
        gates.authorize(actor, registry()[LIST_DOMAINS])
    assert caught.value.extra["requiredScopes"] == ["domain:read"]


def test_gates_run_in_contract_order(client, free_account, monkeypatch, settings, list_mailboxes):
    """401 before the minute's 429 before 402 before 403 before the daily cap: each answer is the first gate that
    fails, and the day is charged only for a call that passed every other gate."""
    list_domains = registry()[LIST_DOMAINS]  # needs PLUS and domain:read
    _at(monkeypatch, 12, 0)
    token = token_for(free_account, scopes="mailbox:read")  # FREE and without domain:read: plan wins over scope
    free_account.plan.daily_request_cap = 1
    free_account.plan.save()
    _problem(call(client, list_domains, token=token), 402, "plan_required")
    _problem(call(client, list_domains, token=token), 402, "plan_required")  # refusals leave the day untouched
    assert call(client, list_mailboxes, token=token).status_code == 200  # today's one call
    _problem(call(client, list_mailboxes, token=token), 429, "daily_cap_reached")
    _problem(call(client, list_domains, token=token), 402, "plan_required")  # the plan gate comes before the day
    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 5
    _problem(call(client, list_domains, token=token), 429, "rate_limited")  # the 6th call this minute
    _problem(call(client, list_domains, token=token + "x"), 401, "unauthenticated")


def test_refused_calls_never_use_up_a_free_accounts_day(client, free_account, monkeypatch, list_mailboxes):
    """5 plan refusals, a missing scope and bad input, then the whole day's 25 calls, then the cap."""
    _at(monkeypatch, 12, 0)
    token, reader = token_for(free_account), token_for(free_account, scopes="email:read", client="Reader")
    for _ in range(5):
        _problem(call(client, registry()[LIST_DOMAINS], token=token), 402, "plan_required")
    _problem(call(client, list_mailboxes, token=reader), 403, "insufficient_scope")
    _problem(call(client, list_mailboxes, token=token, args={"limit": 0}), 400, "validation_error")
    for number in range(25):
        assert call(client, list_mailboxes, token=token).status_code == 200, number
    _problem(call(client, list_mailboxes, token=token), 429, "daily_cap_reached")


def test_rate_headers_ride_on_errors_after_the_meter(client, owner):
    token = token_for(owner, scopes="mailbox:read")
    response = call(client, registry()[LIST_DOMAINS], token=token)
    _problem(response, 403, "insufficient_scope")
    assert response["X-RateLimit-Limit"] == "300" and response["X-RateLimit-Remaining"] == "299"


def test_gates_raise_app_errors_with_their_headers(owner):
    with pytest.raises(Unauthenticated) as caught:
        gates.admit(authorization=None, operation=registry()[LIST_MAILBOXES], headers={})
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_scope_taken_away_applies_to_the_next_call_despite_the_token_cache(client, owner, list_mailboxes):
    """The token is cached once it authenticated a call; a change of its row drops it (agent.receivers)."""
    token = token_for(owner, scopes="mailbox:read")
    assert call(client, list_mailboxes, token=token).status_code == 200
    access_token = token_lookup(token)
    access_token.scope = "domain:read"
    access_token.save()
    _problem(call(client, list_mailboxes, token=token), 403, "insufficient_scope")


def test_a_row_changed_behind_the_products_back_applies_once_the_cache_entry_is_old(client, owner, list_mailboxes,
                                                                                     monkeypatch):
    """A queryset update sends no signal: the entry's TTL is the backstop, then the row is read again."""
    from agent import token_cache

    token = token_for(owner, scopes="mailbox:read")
    assert call(client, list_mailboxes, token=token).status_code == 200
    AccessToken.objects.filter(pk=token_lookup(token).pk).update(scope="domain:read")
    assert call(client, list_mailboxes, token=token).status_code == 200  # the cached grant, within its TTL
    monkeypatch.setattr(token_cache, "TTL_SECONDS", 0)
    _problem(call(client, list_mailboxes, token=token), 403, "insufficient_scope")
