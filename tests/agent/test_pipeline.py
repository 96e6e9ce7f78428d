"""agent.pipeline on its own: one request-log row per call whatever happens, refusals before any argument
is read, strict JSON and lax text validation, and no exception out of it."""

import pytest

from accounts.models import RequestLog
from accounts.request_log import request_log_flush
from agent import gates, pipeline
from agent.operations import registry
from core.errors import RateLimited
from tests.api_helpers import token_for

LIST_MAILBOXES = "qmailing_list_mailboxes"


@pytest.fixture
def actor(owner):
    return gates.authenticate(f"Bearer {token_for(owner)}")


def _rows(actor):
    request_log_flush()
    return list(RequestLog.objects.filter(account=actor.account).values_list("operation", "status"))


def test_one_row_per_call_success_or_failure(actor):
    operation = registry()[LIST_MAILBOXES]
    ok = pipeline.invoke(operation, actor, {"limit": 2}, source=pipeline.REST)
    bad = pipeline.invoke(operation, actor, {"limit": 2, "sort": "asc"}, source=pipeline.MCP_TOOL)
    assert ok.status == 200 and ok.error is None and set(ok.body) == {"items", "next_cursor"}
    assert bad.status == 400 and bad.error.code == "validation_error" and "sort" in bad.error.extra["errors"]
    assert _rows(actor) == [(LIST_MAILBOXES, 200), (LIST_MAILBOXES, 400)]


def test_a_refusal_is_logged_and_no_argument_is_read(actor):
    def reader():
        raise AssertionError("the arguments of a refused call are never read")

    refusal = RateLimited("This token made more than 60 requests in a minute.", retry_after=5)
    outcome = pipeline.invoke(registry()[LIST_MAILBOXES], actor, reader, source=pipeline.REST, refusal=refusal)
    assert outcome.error is refusal and outcome.status == 429
    assert _rows(actor) == [(LIST_MAILBOXES, 429)]


def test_field_errors_are_bounded_whatever_the_caller_sends(actor):
    operation = registry()[LIST_MAILBOXES]
    unknown = {f"{number}{'x' * 300}": 1 for number in range(500)}
    outcome = pipeline.invoke(operation, actor, {"limit": "two", **unknown}, source=pipeline.MCP_TOOL)
    errors = outcome.error.extra["errors"]
    assert outcome.status == 400 and len(errors) == pipeline.FIELDS_LISTED and "limit" in errors
    assert all(len(field) <= pipeline.FIELD_NAME_CHARS for field in errors)
    assert outcome.error.detail.endswith(f"and {501 - pipeline.FIELDS_LISTED} more). Fix each field listed in "
                                         "errors and send again.")
    assert len(outcome.error.detail) < 3000


def test_json_is_validated_strictly_and_text_laxly(actor):
    operation = registry()[LIST_MAILBOXES]
    assert pipeline.invoke(operation, actor, {"limit": "2"}, source=pipeline.MCP_TOOL).status == 400
    assert pipeline.invoke(operation, actor, {"limit": 2.0}, source=pipeline.MCP_TOOL).status == 200  # 2.0 is 2
    assert pipeline.invoke(operation, actor, {"limit": "2"}, source=pipeline.REST, text=True).status == 200


def test_an_unexpected_failure_is_a_logged_500(actor, caplog):
    def crash():
        raise RuntimeError("secret internals")

    outcome = pipeline.read(actor, name="resources/read", gate=registry()["qmailing_wait_for_events"], work=crash,
                            source=pipeline.MCP_RESOURCE)
    assert outcome.status == 500 and outcome.error.code == "server_error" and "secret" not in outcome.error.detail
    assert "secret internals" in caplog.text
    assert _rows(actor) == [("resources/read", 500)]
