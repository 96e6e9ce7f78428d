"""agent.token_cache: what it keeps, what it never keeps, and what drops an entry (in this process; another
process's revocation is tests/agent/mcp/test_daphne.py's)."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.services import account_set_plan
from accounts.tokens import token_lookup
from agent import gates, token_cache
from events import stream
from tests.api_helpers import token_for
from tests.timing import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _subscribed():
    """With REDIS_URL nothing is kept until the process's subscriber is subscribed (it could miss a revocation)."""
    token_cache.clear()
    stream.on_wake(token_cache.woken)
    wait_until(lambda: stream.wake_epoch() is not None, 10, "the events subscriber")


def _cached(token):
    try:
        token_cache.lookup(token, read=None)
    except token_cache.Miss:
        return False
    return True


def test_an_authenticated_token_is_kept_and_each_hit_builds_fresh_objects(owner, django_assert_num_queries):
    token = token_for(owner, scopes="mailbox:read")
    first = gates.authenticate(f"Bearer {token}")
    with django_assert_num_queries(0):
        second = gates.authenticate(f"Bearer {token}")
        third = gates.authenticate(f"Bearer {token}", cached_only=True)
    assert second.token.pk == first.token.pk and second.account == owner and second.scopes == {"mailbox:read"}
    assert second.account.plan.code == owner.plan.code and second.user.pk == first.user.pk
    assert second.token is not third.token and second.account is not third.account  # no object shared by two calls


def test_a_refused_token_is_never_kept(owner):
    token = token_for(owner)
    token_lookup(token).__class__.objects.filter(pk=token_lookup(token).pk).update(
        expires=timezone.now() - dt.timedelta(seconds=1))
    for _ in range(2):
        with pytest.raises(gates.Unauthenticated):
            gates.authenticate(f"Bearer {token}")
    assert not _cached(token)
    assert gates.authenticate(f"Bearer {token}", cached_only=True) is None  # a miss: read it from the database


def test_a_read_that_raced_a_revocation_is_not_kept(owner):
    token = token_for(owner)
    access_token, mailbox_ids, pending = token_cache.lookup(token, read=gates._read_token)
    token_cache.forget_account(owner.pk)  # the revocation committed while that read was under way
    token_cache.admit(pending, access_token, mailbox_ids)
    assert not _cached(token)


def test_expiry_is_checked_on_every_hit(owner, monkeypatch):
    token = token_for(owner)
    gates.authenticate(f"Bearer {token}")
    assert _cached(token)
    expires = token_lookup(token).expires
    monkeypatch.setattr(token_cache.timezone, "now", lambda: expires + dt.timedelta(seconds=1))
    assert not _cached(token)


def test_a_plan_change_drops_the_accounts_tokens(owner, free_account):
    token, other = token_for(owner), token_for(free_account)
    gates.authenticate(f"Bearer {token}")
    gates.authenticate(f"Bearer {other}")
    account_set_plan(account=owner, plan_code="FREE")
    assert not _cached(token) and _cached(other)  # another account's entries stay
    assert gates.authenticate(f"Bearer {token}").account.plan.code == "FREE"


def test_a_deactivated_person_is_refused_on_the_next_call(owner):
    token = token_for(owner)
    gates.authenticate(f"Bearer {token}")
    user = owner.users.get()
    user.is_active = False
    user.save()
    with pytest.raises(gates.Unauthenticated):
        gates.authenticate(f"Bearer {token}")
