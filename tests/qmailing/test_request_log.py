"""The request log: a row per gated API call with metadata only, a 30-day purge, usage per day."""

import datetime as dt

from django.conf import settings
from django.utils import timezone

from accounts.models import RequestLog
from accounts.request_log import (account_usage, request_log_flush, request_log_purge, request_log_write,
                                  with_last_used)
from accounts.tasks import request_log_purge_task
from accounts.tokens import token_list
from tests.api_helpers import token_for

MAILBOXES = "/api/v1/pub/mailboxes"


def _get(client, token, path=MAILBOXES):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_each_call_writes_one_row_with_status_and_duration_and_no_body(client, owner):
    token = token_for(owner)
    created = client.post(MAILBOXES, '{"local_part": "secret-local-part", "display_name": "Very Private"}',
                          content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert created.status_code == 201
    assert _get(client, token).status_code == 200
    assert _get(client, token, f"{MAILBOXES}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert not RequestLog.objects.exists()  # buffered, off the request path
    assert request_log_flush() == 3
    rows = list(RequestLog.objects.order_by("id"))
    assert [(row.operation, row.status) for row in rows] == [
        ("qmailing_create_mailbox", 201), ("qmailing_list_mailboxes", 200), ("qmailing_get_mailbox", 404)]
    token_id = owner.users.get().oauth2_provider_accesstoken.get().pk
    for row in rows:
        assert row.account_id == owner.pk and row.token_id == token_id
        assert row.duration_ms >= 0 and timezone.now() - row.created_at < dt.timedelta(minutes=1)
    stored = " ".join(str(value) for row in RequestLog.objects.values() for value in row.values())
    assert "secret-local-part" not in stored and "Very Private" not in stored  # never bodies or results
    assert {field.name for field in RequestLog._meta.get_fields()} == {
        "id", "created_at", "account", "token_id", "operation", "status", "duration_ms"}


def test_refusals_by_the_gates_are_logged_against_the_caller(client, owner, free_account):
    read_only = token_for(owner, scopes="domain:read")
    assert _get(client, read_only).status_code == 403
    free = token_for(free_account)
    assert client.get("/api/v1/pub/domains", HTTP_AUTHORIZATION=f"Bearer {free}").status_code == 402
    request_log_flush()
    assert [(row.account_id, row.status) for row in RequestLog.objects.order_by("id")] == [
        (owner.pk, 403), (free_account.pk, 402)]


def test_calls_without_a_valid_token_are_not_logged(client, db):
    assert client.get(MAILBOXES).status_code == 401
    assert _get(client, "qm_live_" + "A" * 36).status_code == 401
    assert client.get("/api/v1/pub/nowhere").status_code == 404
    assert request_log_flush() == 0
    assert not RequestLog.objects.exists()


def test_a_revoked_tokens_history_stays(client, owner):
    from accounts.tokens import token_revoke

    token = token_for(owner)
    _get(client, token)
    request_log_flush()
    token_revoke(account=owner, token_id=RequestLog.objects.get().token_id)
    assert _get(client, token).status_code == 401
    request_log_flush()
    assert RequestLog.objects.count() == 1


def _row(account, *, age, status=200, token_id=1):
    RequestLog.objects.create(account=account, token_id=token_id, operation="qmailing_list_mailboxes",
                              status=status, duration_ms=3, created_at=timezone.now() - age)


def test_purge_deletes_only_rows_older_than_30_days_in_batches(owner):
    for days in (31, 45, 90):
        _row(owner, age=dt.timedelta(days=days))
    _row(owner, age=dt.timedelta(days=30, minutes=1))
    _row(owner, age=dt.timedelta(days=29, hours=23))
    _row(owner, age=dt.timedelta(0))
    assert request_log_purge(batch=2) == 4
    ages = sorted((timezone.now() - row.created_at).days for row in RequestLog.objects.all())
    assert ages == [0, 29]
    assert request_log_purge_task() == 0


def test_purge_task_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["request-log-purge"]
    assert entry["task"] == "accounts.tasks.request_log_purge_task"
    assert request_log_purge_task.name == entry["task"]


def test_usage_counts_today_against_the_cap_and_per_day(free_account, outsider):
    now = timezone.now()
    midnight = dt.datetime.combine(now.astimezone(dt.timezone.utc).date(), dt.time(), tzinfo=dt.timezone.utc)
    for _ in range(3):
        _row(free_account, age=now - midnight)  # today, at midnight UTC
    _row(free_account, age=now - midnight, status=429)  # refused by a limit: not counted against the cap
    _row(free_account, age=now - midnight + dt.timedelta(seconds=1))  # yesterday, 23:59:59
    _row(free_account, age=dt.timedelta(days=2))
    _row(free_account, age=dt.timedelta(days=40))  # outside the window
    _row(outsider, age=dt.timedelta(0))
    usage = account_usage(account=free_account, now=now)
    assert (usage["today"], usage["cap"], usage["remaining"]) == (3, 25, 22)
    per_day = dict(usage["per_day"])
    assert len(usage["per_day"]) == 30 and usage["per_day"][-1][0] == midnight.date()
    assert per_day[midnight.date()] == 3 and per_day[midnight.date() - dt.timedelta(days=1)] == 1
    assert sum(per_day.values()) == 5
    assert account_usage(account=outsider, now=now)["cap"] is None


def test_usage_follows_real_calls(client, free_account):
    token = token_for(free_account, scopes="mailbox:read")
    for _ in range(4):
        assert _get(client, token).status_code == 200
    request_log_flush()
    assert account_usage(account=free_account)["today"] == 4


def test_last_used_comes_from_the_log(client, owner):
    token = token_for(owner)
    unused = token_for(owner, client="Unused")
    assert all(item.last_used is None for item in with_last_used(token_list(account=owner)))
    _get(client, token)
    request_log_flush()
    by_client = {item.application.name: item.last_used for item in with_last_used(token_list(account=owner))}
    assert by_client["Unused"] is None and timezone.now() - by_client["Test client"] < dt.timedelta(minutes=1)
    assert unused


def test_write_is_one_insert(owner, django_assert_num_queries):
    with django_assert_num_queries(1):
        request_log_write(account=owner, token_id=7, operation="qmailing_list_mailboxes", status=200, duration_ms=1.7)
    assert RequestLog.objects.get().duration_ms == 1


def test_a_failed_log_write_does_not_change_the_answer(client, owner, monkeypatch):
    import agent.pipeline

    def broken(**kwargs):
        raise RuntimeError("log table unavailable")

    monkeypatch.setattr(agent.pipeline, "request_log_enqueue", broken)
    assert _get(client, token_for(owner)).status_code == 200
