"""Every tool over MCP, generated from the registry: the gate matrix and parity with the REST twin.

On 2025-06-18 (the version the docs promise; raw JSON-RPC with a session) and on the session-less
2026-07-28 (the SDK's client). A new registry entry is in both automatically.
"""

import json

import httpx2
import jsonschema
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from accounts.models import Plan
from accounts.scopes import SCOPES
from accounts.services import account_set_plan
from agent.mcp.tools import output_schema
from agent.operations import registry
from tests.api_helpers import token_for, tool_problem
from tests.agent.mcp.conftest import rpc, run
from tests.qmailing.test_permission_matrix import _plan_below, other_mailbox, owner_objects, sample_args  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows

VERSIONS = ["2025-06-18", "2026-07-28"]


def _calls(mcp_url, token, version, calls):
    """Make each (tool, arguments) call in one connection; the results as the JSON-RPC `result` dicts."""
    if version == "2026-07-28":
        async def scenario():
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
                async with Client(streamable_http_client(mcp_url, http_client=http), mode=version) as client:
                    return [await client.call_tool(name, arguments) for name, arguments in calls]

        return [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in run(scenario())]
    response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "matrix", "version": "1"}}}, token=token)
    assert reply["result"]["protocolVersion"] == version, response.text
    session = response.headers["Mcp-Session-Id"]
    rpc(mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token, session=session, version=version)
    results = []
    for number, (name, arguments) in enumerate(calls, start=2):
        response, reply = rpc(mcp_url, {"jsonrpc": "2.0", "id": number, "method": "tools/call",
                                        "params": {"name": name, "arguments": arguments}},
                              token=token, session=session, version=version)
        assert response.status_code == 200 and reply is not None, (name, response.status_code, response.text[:300])
        results.append(reply["result"])
    return results


def _jsonable(args):
    return json.loads(json.dumps(args, default=str))


@pytest.mark.parametrize("version", VERSIONS)
def test_outsiders_token_gets_not_found_for_every_owner_object(mcp_url, owner, outsider, owner_objects, version):  # noqa: F811
    account_set_plan(account=outsider, plan_code=Plan.PRO_MAX)  # every gate passes; only ownership is left
    aimed = [(name, _jsonable(sample_args(op, owner_objects))) for name, op in registry().items()
             if any(n.endswith("_id") for n in sample_args(op, owner_objects))]
    results = _calls(mcp_url, token_for(outsider), version, aimed)
    for (name, _), result in zip(aimed, results):
        problem = tool_problem(result)
        assert (problem["status"], problem["code"]) == (404, "not_found"), name


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_limited_to_another_mailbox_gets_what_an_outsider_gets(mcp_url, owner, owner_objects, version):  # noqa: F811
    """The owner's token limited to a mailbox that holds none of the objects: not_found for each of them, as for
    another account's; token_limited_to_mailboxes for every account-wide tool; lists without the objects."""
    account_set_plan(account=owner, plan_code=Plan.PRO_MAX)
    token = token_for(owner, mailbox_ids=[other_mailbox(owner).pk])
    calls = [(name, _jsonable(sample_args(op, owner_objects))) for name, op in registry().items()]
    for (name, args), result in zip(calls, _calls(mcp_url, token, version, calls)):
        operation = registry()[name]
        if operation.account_wide:
            tool_problem(result, "token_limited_to_mailboxes")
        elif any(n.endswith("_id") for n in args):
            assert tool_problem(result, "not_found")["status"] == 404, name
        else:
            assert result["isError"] is False, name
            body = result["structuredContent"]
            assert all(str(v) not in json.dumps(body) for v in owner_objects.values()), name


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_without_the_scope_gets_insufficient_scope_for_every_tool(mcp_url, owner, owner_objects, version):  # noqa: F811
    for scope in SCOPES:
        calls = [(name, _jsonable(sample_args(op, owner_objects))) for name, op in registry().items() if op.scope == scope]
        if not calls:
            continue
        account_set_plan(account=owner, plan_code=Plan.PRO_MAX)  # every plan gate passes; only the scope is left
        token = token_for(owner, scopes=" ".join(s for s in SCOPES if s != scope))
        for (name, _), result in zip(calls, _calls(mcp_url, token, version, calls)):
            problem = tool_problem(result)
            assert problem["code"] == "insufficient_scope", name
            assert problem["requiredScopes"] == [scope], name


@pytest.mark.parametrize("version", VERSIONS)
def test_an_account_on_a_lower_plan_gets_plan_required_for_every_tool_above_it(mcp_url, owner, owner_objects, settings,  # noqa: F811
                                                                               version):
    token = token_for(owner)
    by_plan = {}
    for name, op in registry().items():
        below, required = _plan_below(op.plan_group)
        if below is not None:
            by_plan.setdefault((below.code, required.code), []).append((name, _jsonable(sample_args(op, owner_objects))))
    for (below, required), calls in by_plan.items():
        account_set_plan(account=owner, plan_code=below)
        # FREE meters 25 calls a day; the matrix is about the plan gate, so it spends them in slices.
        for start in range(0, len(calls), 20):
            chunk = calls[start:start + 20]
            for (name, _), result in zip(chunk, _calls(mcp_url, token, version, chunk)):
                problem = tool_problem(result)
                assert (problem["code"], problem["requiredPlan"]) == ("plan_required", required), name
            settings.QMAILING_RATELIMIT_KEY_PREFIX += "x"  # a fresh day's budget for the next slice


def _validates_against_its_schemas(name, structured):
    """A success result validates against the outputSchema tools/list advertises (what every MCP client SDK
    checks) and against the output model's full JSON Schema (what the OpenAPI document describes)."""
    operation = registry()[name]
    jsonschema.validate(structured, output_schema(operation))
    jsonschema.validate(structured, operation.output.model_json_schema(mode="serialization"))


READ_TOOLS = sorted(name for name, op in registry().items() if op.annotations.read_only)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_read_tool_returns_exactly_what_its_rest_twin_returns(base, mcp_url, owner, owner_objects, settings, version):  # noqa: F811
    settings.QMAILING_EVENTS_WAIT_MAX_SECONDS = 0.2  # the long-poll answers the same, only sooner
    account_set_plan(account=owner, plan_code=Plan.PRO_MAX)  # every tool's plan
    token = token_for(owner)
    calls = [(name, _jsonable(sample_args(registry()[name], owner_objects))) for name in READ_TOOLS]
    results = _calls(mcp_url, token, version, calls)
    for (name, args), result in zip(calls, results):
        assert result["isError"] is False, (name, result)
        _validates_against_its_schemas(name, result["structuredContent"])
        operation = registry()[name]
        path, query = operation.rest_path, dict(args)
        for param in operation.path_params:
            path = path.replace("{" + param + "}", str(query.pop(param)))
        if name == "qmailing_wait_for_events":
            # Events move on between the two calls; compare from the same cursor.
            query["cursor"] = result["structuredContent"]["cursor"]
        rest = requests.get(f"{base}{path}", params=query, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert rest.status_code == 200, (name, rest.text[:300])
        body, tool = rest.json(), result["structuredContent"]
        if name == "qmailing_get_dns_records":
            for item in body.get("records", []) + tool.get("records", []):
                item.pop("checked_at", None)
        assert tool == body, name


WRITE_TOOLS = sorted(name for name, op in registry().items() if not op.annotations.read_only)


def succeeding_calls(owner, outsider, objects, *, names, tag):
    """(tool, arguments) of a call of each tool in `names` that succeeds for `owner` on a PRO_MAX plan, with
    `objects` (owner_objects): sends go to the outsider's hosted mailbox (delivered at once, nothing leaves the
    machine), the deletes and the draft's send come last, and `tag` keeps created names apart. It readdresses
    the owner's draft to the outsider."""
    from mailboxes.store.drafts import draft_create

    mailbox = owner.mailboxes.get()
    elsewhere = outsider.mailboxes.get().address
    spare_draft = draft_create(account=owner, mailbox=mailbox, to=[elsewhere], text="to delete")
    overrides = {
        "qmailing_send_email": {"to": [elsewhere]},
        "qmailing_forward_email": {"to": [elsewhere], "note": "FYI"},
        "qmailing_send_draft": {},  # the owner's draft, now
        "qmailing_delete_draft": {"draft_id": spare_draft.id},
        "qmailing_delete_webhook": {},
        "qmailing_add_domain": {"name": f"agent-{tag}.example"},
        "qmailing_create_mailbox": {"local_part": f"agent{tag}", "domain_id": None},
        "qmailing_wait_for_events": {"timeout_seconds": 0},  # an answer at once, events or none
    }
    spare_draft.__class__.objects.filter(pk=objects["draft_id"]).update(to=[elsewhere])
    calls = []
    for name in sorted(names, key=lambda name: name in ("qmailing_delete_webhook", "qmailing_send_draft")):
        args = sample_args(registry()[name], objects)
        args.update(overrides.get(name, {}))
        calls.append((name, _jsonable({k: v for k, v in args.items() if v is not None})))
    return calls


@pytest.mark.parametrize("version", VERSIONS)
def test_every_write_tool_succeeds_for_its_owner_and_returns_its_output_model(mcp_url, owner, outsider, owner_objects,  # noqa: F811
                                                                             version):
    """The happy path of every tool that changes something, over MCP; a new write tool must be added here."""
    account_set_plan(account=owner, plan_code=Plan.PRO_MAX)
    token = token_for(owner)
    calls = succeeding_calls(owner, outsider, owner_objects, names=WRITE_TOOLS, tag=version.replace("-", ""))
    results = _calls(mcp_url, token, version, calls)
    for (name, args), result in zip(calls, results):
        assert result["isError"] is False, (name, args, result["content"])
        registry()[name].output.model_validate(result["structuredContent"])
        _validates_against_its_schemas(name, result["structuredContent"])
    assert set(WRITE_TOOLS) == {name for name, _ in calls}
