"""The tools at /mcp over real HTTP with the SDK's client: generated from the registry, gated like REST.

A tool and its REST twin (served by the same ASGI app) return the same object for the same token and
arguments; every gate failure past authentication and the throttle is an isError result carrying the
problem object; every tools/call writes one request-log row.
"""

import json

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from accounts.models import RequestLog
from accounts.request_log import request_log_flush
from mailboxes.inbound.ingest import email_ingest
from agent.operations import registry
from tests.api_helpers import token_for, tool_problem
from tests.mailboxes.inbound_helpers import make_message
from tests.agent.mcp.conftest import rpc, run

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

MODES = ["legacy", "2026-07-28"]  # 2025-11-25 with a session, and the session-less 2026-07-28


def _calls(url, token, calls, mode="legacy"):
    """Open one client, make each (tool, arguments) call in order, return the CallToolResults."""
    async def scenario():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                return [await client.call_tool(name, arguments) for name, arguments in calls]

    return run(scenario())


def _list_tools(url, token, mode="legacy"):
    async def scenario():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                return await client.list_tools()

    return run(scenario())


def _rest(base, operation, token, path_args=None, query=None):
    path = operation.rest_path
    for name, value in (path_args or {}).items():
        path = path.replace("{" + name + "}", str(value))
    return requests.get(f"{base}{path}", params=query, headers={"Authorization": f"Bearer {token}"}, timeout=10)


TOOL_LIST_BUDGET = 32_000  # characters of compact JSON for a full-scope PRO token (docs/agents/mcp.md)
MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientInfo": {"name": "qmailing-tests", "version": "1"},
               "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
def pro_account(db):
    from tests.conftest import make_user

    return make_user("pro@example.org", plan="PRO").account


def _wire_tool_list(url, token):
    """The tools/list result exactly as the server sent it (a session-less 2026-07-28 request)."""
    response, reply = rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}},
                          token=token, version="2026-07-28")
    assert response.status_code == 200, response.text
    return reply["result"]


def _schema_keywords(schema, found):
    """Every keyword used in `schema` (not the property names that `properties` and `$defs` map)."""
    if isinstance(schema, list):
        for item in schema:
            _schema_keywords(item, found)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _schema_keywords(sub, found)
            else:
                _schema_keywords(value, found)
    return found


@pytest.mark.parametrize("mode", MODES)
def test_tools_list_has_every_operation_with_lean_schemas_and_annotations(mcp_url, pro_account, mode):
    tools = {tool.name: tool for tool in _list_tools(mcp_url, token_for(pro_account), mode).tools}
    assert set(tools) == set(registry())
    for name, operation in registry().items():
        tool = tools[name]
        assert tool.title == operation.title and tool.description == operation.description
        assert len(operation.description) <= 400, name
        assert tool.input_schema["type"] == "object" and tool.input_schema["additionalProperties"] is False
        # Every argument, under its wire name (aliases too), described; no automatic titles or examples.
        assert tool.input_schema["properties"].keys() == operation.input.model_json_schema()["properties"].keys()
        assert all(field.get("description") for field in tool.input_schema["properties"].values()), name
        assert not {"title", "examples"} & _schema_keywords(tool.input_schema, set()), name
        assert tool.output_schema == {"type": "object",
                                      "required": list(operation.output.model_json_schema(mode="serialization")["properties"])}
        hints = tool.annotations.model_dump(by_alias=True, exclude_none=True)
        assert "title" not in hints  # the tool's own title says it
        declared = operation.tool_annotations()
        for key, value in hints.items():  # a hint that is sent is the operation's
            assert declared[key] == value, (name, key)
        for key, default in {"readOnlyHint": False, "openWorldHint": True}.items():  # one that is left out is the default
            assert hints.get(key, default) == declared[key], (name, key)
        if not operation.annotations.read_only:
            for key, default in {"destructiveHint": True, "idempotentHint": False}.items():
                assert hints.get(key, default) == declared[key], (name, key)


def test_a_full_pro_tool_list_fits_its_budget_and_says_the_mail_warning_once(mcp_url, pro_account, record_property):
    from agent.operations import UNTRUSTED_CONTENT_WARNING

    result = _wire_tool_list(mcp_url, token_for(pro_account))
    wire = json.dumps(result, separators=(",", ":"))
    record_property("tools_list_chars", len(wire))
    assert {tool["name"] for tool in result["tools"]} == set(registry())
    assert len(wire) <= TOOL_LIST_BUDGET, len(wire)
    assert UNTRUSTED_CONTENT_WARNING not in wire  # said once, in the instructions
    response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        token=token_for(pro_account))
    assert UNTRUSTED_CONTENT_WARNING in reply["result"]["instructions"]
    assert reply["result"]["capabilities"]["tools"] == {"listChanged": True}


@pytest.mark.parametrize("plan, scopes, expected", [
    ("FREE", "mailbox:read email:read", {"qmailing_list_mailboxes", "qmailing_get_mailbox"}),
    ("PLUS", "email:read", {"qmailing_list_emails", "qmailing_get_email", "qmailing_search_emails",
                            "qmailing_list_threads", "qmailing_get_thread", "qmailing_get_attachment",
                            "qmailing_wait_for_events"}),
    ("PLUS", "webhook:manage", set()),
    ("PRO", "webhook:manage", {"qmailing_list_webhooks", "qmailing_register_webhook", "qmailing_delete_webhook",
                               "qmailing_rotate_webhook_secret"}),
])
@pytest.mark.parametrize("mode", MODES)
def test_a_token_is_shown_only_the_tools_its_plan_and_scopes_allow(mcp_url, plan, scopes, expected, mode):
    from tests.conftest import make_user

    account = make_user(f"{plan.lower()}-lister@example.org", plan=plan).account
    listed = {tool.name for tool in _list_tools(mcp_url, token_for(account, scopes=scopes), mode).tools}
    assert listed == expected


@pytest.mark.parametrize("mode", MODES)
def test_a_tool_the_token_was_not_shown_still_answers_the_gates_refusal(mcp_url, free_account, mode):
    token = token_for(free_account, scopes="mailbox:read")
    assert "qmailing_list_domains" not in {tool.name for tool in _list_tools(mcp_url, token, mode).tools}
    assert "qmailing_get_email" not in {tool.name for tool in _list_tools(mcp_url, token, mode).tools}
    plan, scope = _calls(mcp_url, token, [("qmailing_list_domains", {}),
                                          ("qmailing_get_email", {"email_id": "0b0f6c43-4c1f-4a8e-9d7a-0f3c2b1a9e55"})],
                         mode)
    assert _problem(plan)["code"] == "plan_required" and _problem(scope)["status"] in (402, 403)


@pytest.mark.parametrize("mode", MODES)
def test_list_mailboxes_equals_its_rest_twin(base, mcp_url, owner, mode):
    token = token_for(owner)
    [result] = _calls(mcp_url, token, [("qmailing_list_mailboxes", {"limit": 5})], mode)
    assert result.is_error is False
    rest = _rest(base, registry()["qmailing_list_mailboxes"], token, query={"limit": 5})
    assert rest.status_code == 200
    assert result.structured_content == rest.json()
    assert json.loads(result.content[0].text) == rest.json()


def test_get_email_equals_its_rest_twin(base, mcp_url, owner, dns_server):
    mailbox = owner.mailboxes.get()
    email = email_ingest(mailbox=mailbox, raw=make_message(subject="Parity", text="Same object both ways.\n"))
    token = token_for(owner, scopes="email:read")
    [result] = _calls(mcp_url, token, [("qmailing_get_email", {"email_id": str(email.id)})])
    rest = _rest(base, registry()["qmailing_get_email"], token, path_args={"email_id": email.id})
    assert rest.status_code == 200 and result.is_error is False
    assert result.structured_content == rest.json()
    assert result.structured_content["subject"] == "Parity"


def _problem(result):
    problem = tool_problem(result)
    assert {"type", "title", "status", "detail", "code", "instance"} <= set(problem)
    return problem


def test_free_accounts_daily_cap_is_an_error_result(mcp_url, free_account):
    token = token_for(free_account, scopes="mailbox:read")
    cap = free_account.plan.daily_request_cap
    assert cap == 25
    results = _calls(mcp_url, token, [("qmailing_list_mailboxes", {})] * (cap + 1), mode="2026-07-28")
    assert all(result.is_error is False for result in results[:cap])
    problem = _problem(results[cap])
    assert problem["code"] == "daily_cap_reached" and problem["status"] == 429 and problem["retryAfter"] > 0
    assert problem["upgradeUrl"]
    request_log_flush()
    statuses = list(RequestLog.objects.filter(account=free_account).values_list("status", flat=True))
    assert statuses.count(200) == cap and statuses.count(429) == 1


def test_handshake_and_listing_do_not_eat_the_daily_cap(mcp_url, free_account):
    token = token_for(free_account, scopes="mailbox:read")
    for _ in range(free_account.plan.daily_request_cap):  # under QMAILING_MCP_INITIALIZE_PER_MINUTE (30)
        _list_tools(mcp_url, token)  # each: initialize, notifications/initialized, tools/list
    [result] = _calls(mcp_url, token, [("qmailing_list_mailboxes", {})])
    assert result.is_error is False


def test_refused_tool_calls_never_use_up_a_free_accounts_day(mcp_url, free_account):
    """5 plan refusals and an unknown argument, then the day's 25 calls, then the cap: as on REST."""
    token = token_for(free_account)
    refused = [("qmailing_list_domains", {})] * 5 + [("qmailing_list_mailboxes", {"sort": "asc"})]
    cap = free_account.plan.daily_request_cap
    results = _calls(mcp_url, token, refused + [("qmailing_list_mailboxes", {})] * (cap + 1), mode="2026-07-28")
    assert [_problem(result)["status"] for result in results[:6]] == [402] * 5 + [400]
    assert all(result.is_error is False for result in results[6:6 + cap])
    assert _problem(results[-1])["code"] == "daily_cap_reached"


def test_plan_gate_is_an_error_result(mcp_url, free_account):
    [result] = _calls(mcp_url, token_for(free_account), [("qmailing_list_domains", {})])
    problem = _problem(result)
    assert problem["code"] == "plan_required" and problem["status"] == 402 and problem["requiredPlan"] == "PLUS"


def test_missing_scope_is_an_error_result_naming_it(mcp_url, owner):
    [result] = _calls(mcp_url, token_for(owner, scopes="email:read"), [("qmailing_list_mailboxes", {})])
    problem = _problem(result)
    assert problem["code"] == "insufficient_scope" and problem["status"] == 403
    assert problem["requiredScopes"] == ["mailbox:read"]


def test_another_accounts_mailbox_is_not_found(mcp_url, owner, outsider):
    theirs = outsider.mailboxes.get()
    [result] = _calls(mcp_url, token_for(owner), [("qmailing_get_mailbox", {"mailbox_id": str(theirs.id)})])
    problem = _problem(result)
    assert problem["code"] == "not_found" and problem["status"] == 404


def test_unknown_argument_is_refused_naming_it(mcp_url, owner):
    [result] = _calls(mcp_url, token_for(owner), [("qmailing_list_mailboxes", {"limit": 5, "sort": "asc"})])
    problem = _problem(result)
    assert problem["code"] == "validation_error" and "sort" in problem["errors"] and "sort" in problem["detail"]


def test_an_error_result_is_the_detail_on_one_line_then_the_problem_as_compact_json(mcp_url, owner):
    [result] = _calls(mcp_url, token_for(owner), [("qmailing_get_email", {"email_id": "nope", "max_chars": -1})])
    headline, json_line = result.content[0].text.split("\n")
    problem = _problem(result)
    assert headline == problem["detail"] and json_line == json.dumps(problem, separators=(",", ":"))
    assert set(problem["errors"]) == {"email_id", "max_chars"} and all(problem["errors"].values())


def test_a_detail_spanning_lines_is_one_headline():
    from agent.mcp.tools import error_text

    text = error_text({"detail": "report\r\nfinal.pdf is too large.", "code": "attachment_too_large"})
    assert text.split("\n")[0] == "report final.pdf is too large."
    assert json.loads(text.split("\n")[1])["detail"] == "report\r\nfinal.pdf is too large."


def test_mistyped_argument_is_refused(mcp_url, owner):
    [result] = _calls(mcp_url, token_for(owner), [("qmailing_list_mailboxes", {"limit": "5"})])
    assert "limit" in _problem(result)["errors"]


def test_unknown_tool_is_a_protocol_error(mcp_url, owner):
    token = token_for(owner)

    async def scenario():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), mode="legacy") as client:
                try:
                    await client.call_tool("qmailing_no_such_tool", {})
                except MCPError as error:
                    return error

    error = run(scenario())
    assert error.code == INVALID_PARAMS and "Unknown tool" in error.message


def test_every_tool_call_writes_one_request_log_row(mcp_url, owner, outsider):
    token = token_for(owner)
    theirs = outsider.mailboxes.get()
    _calls(mcp_url, token, [("qmailing_list_mailboxes", {}), ("qmailing_get_mailbox", {"mailbox_id": str(theirs.id)}),
                            ("qmailing_list_mailboxes", {"bogus": 1})])
    request_log_flush()
    rows = list(RequestLog.objects.filter(account=owner).order_by("id").values_list("operation", "status", "token_id"))
    token_id = RequestLog.objects.filter(account=owner).values_list("token_id", flat=True).first()
    assert rows == [("qmailing_list_mailboxes", 200, token_id), ("qmailing_get_mailbox", 404, token_id),
                    ("qmailing_list_mailboxes", 400, token_id)]


def test_unexpected_exception_is_a_generic_server_error_result(mcp_url, owner, monkeypatch, caplog):
    from dataclasses import replace

    from agent import operations

    def crash(*, actor, args):
        raise RuntimeError("secret internals")

    name = "qmailing_list_mailboxes"
    monkeypatch.setitem(operations._registry, name, replace(operations._registry[name], handler=crash))
    [result] = _calls(mcp_url, token_for(owner), [(name, {})])
    problem = _problem(result)
    assert problem["code"] == "server_error" and problem["status"] == 500
    assert "secret internals" not in json.dumps(problem) and "Traceback" not in result.content[0].text
    assert "secret internals" in caplog.text  # logged on our side
    request_log_flush()
    assert list(RequestLog.objects.filter(account=owner).values_list("status", flat=True)) == [500]
