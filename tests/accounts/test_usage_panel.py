"""Settings → Developers → Usage: today's calls against the plan's cap, and the last 30 days by day, operation
and outcome, drawn on the server from request-log rows (the numbers here are the rows this test writes)."""

import re
from datetime import timedelta

from django.utils import timezone

from accounts.models import RequestLog
from accounts.request_log import TOP_OPERATIONS, request_log_write, usage_breakdown

INDEX = "/settings/developers/"


def _log(account, operation, status, *, days_ago=0, count=1):
    for _ in range(count):
        request_log_write(account=account, token_id=None, operation=operation, status=status, duration_ms=4)
    if days_ago:
        RequestLog.objects.filter(account=account, created_at__gte=timezone.now() - timedelta(minutes=1)).update(
            created_at=timezone.now() - timedelta(days=days_ago))


def _seed(account, other):
    _log(account, "qmailing_list_emails", 200, days_ago=1, count=3)
    _log(account, "qmailing_send_email", 500, days_ago=1)
    _log(account, "qmailing_list_mailboxes", 200, days_ago=45, count=5)  # past the 30-day window
    _log(account, "qmailing_list_mailboxes", 200, count=2)
    _log(account, "qmailing_get_email", 404)
    _log(account, "qmailing_send_email", 429)
    _log(other, "qmailing_list_mailboxes", 200, count=7)  # another account's calls never count


def _usage(page):
    return page.split('id="usage"', 1)[1]


def _rows(html, caption):
    table = html.split(f"<caption class=\"visually-hidden\">{caption}</caption>", 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_free_plan_shows_todays_calls_against_its_cap_with_a_progress_bar(client, free_account, owner):
    _seed(free_account, owner)
    client.force_login(free_account.users.get())
    usage = _usage(client.get(INDEX).content.decode())
    # Today: 2 + 1 counted; the 429 got nothing through, so it does not count against the cap.
    assert '<span class="usage-figure">3</span> / 25 calls today' in usage
    assert 'role="progressbar"' in usage and 'aria-valuenow="3"' in usage and 'aria-valuemax="25"' in usage
    assert '<span style="width: 12%"></span>' in usage  # 3 of 25
    assert "22 calls left today" in usage


def test_chart_and_tables_match_the_request_log(client, owner, outsider):
    _seed(owner, outsider)
    client.force_login(owner.users.get())
    usage = _usage(client.get(INDEX).content.decode())
    assert "No daily cap on the" in usage and 'role="progressbar"' not in usage
    assert "8 calls from" in usage  # 4 today + 4 yesterday; the 45-day-old ones and the outsider's are not here

    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    labels = ["Succeeded (2xx)", "Refused (4xx)", "Rate-limited (429)", "Failed (5xx)"]
    assert _rows(usage, "Calls per day by outcome") == [
        [f"{today:%Y-%m-%d}", "2", "1", "1", "0", "4"],
        [f"{yesterday:%Y-%m-%d}", "3", "0", "0", "1", "4"],
    ]
    assert _rows(usage, "Calls per operation by outcome") == [
        ["qmailing_list_emails", "3", "0", "0", "0", "3"],
        ["qmailing_list_mailboxes", "2", "0", "0", "0", "2"],
        ["qmailing_send_email", "0", "0", "1", "1", "2"],
        ["qmailing_get_email", "0", "1", "0", "0", "1"],
    ]
    assert _rows(usage, "Calls per HTTP status") == [["200", "5"], ["404", "1"], ["429", "1"], ["500", "1"]]
    for label in labels:
        assert label in usage

    # The chart: 30 day columns, the busiest days full height, each day's title spelling out its numbers.
    days = re.findall(r'<div class="day" title="([^"]+)">', usage)
    assert len(days) == 30
    assert days[-1] == f"{today:%Y-%m-%d}: 4 calls; 2 succeeded (2xx); 1 refused (4xx); 1 rate-limited (429)"
    assert days[-2] == f"{yesterday:%Y-%m-%d}: 4 calls; 3 succeeded (2xx); 1 failed (5xx)"
    assert days[0].endswith(": 0 calls")
    assert usage.count('<div class="stack" style="height: 100.00%">') == 2
    assert '<span class="s-ok" style="height: 75.00%"></span><span class="s-failed" style="height: 25.00%"></span>' in usage
    # By operation, as bars relative to the busiest one.
    assert '<span class="s-op" style="width: 100.00%"></span>' in usage
    assert '<span class="s-op" style="width: 33.33%"></span>' in usage
    assert "<details" in usage and "Show the numbers as tables" in usage


def test_no_calls_is_an_empty_state_that_says_what_to_do(client, owner):
    client.force_login(owner.users.get())
    usage = _usage(client.get(INDEX).content.decode())
    assert "No calls in the last 30 days." in usage and "Connect a client above" in usage
    assert '<div class="chart"' not in usage and "<details" not in usage
    assert '<span class="usage-figure">0</span> calls today' in usage


def test_operations_past_the_top_ones_are_grouped(owner):
    for number in range(TOP_OPERATIONS + 3):
        _log(owner, f"op_{number:02d}", 200, count=20 - number)
    breakdown = usage_breakdown(account=owner)
    names = [operation["name"] for operation in breakdown["operations"]]
    assert names[:TOP_OPERATIONS] == [f"op_{number:02d}" for number in range(TOP_OPERATIONS)]
    assert names[-1] == "Other operations (3)"
    assert breakdown["operations"][-1]["calls"] == (20 - 8) + (20 - 9) + (20 - 10)
    assert breakdown["total"] == sum(operation["calls"] for operation in breakdown["operations"])


def test_operation_names_are_escaped(client, owner):
    _log(owner, "/api/v1/pub/<script>x</script>", 404)
    client.force_login(owner.users.get())
    page = client.get(INDEX).content.decode()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
