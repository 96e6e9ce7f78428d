"""A client built on the MCP TypeScript SDK 1.x against a real server: every tool on success, and each error
family, read without the SDK throwing.

mcp-remote (the wizard's Claude Desktop snippet), most editor clients and the Inspector run this SDK. When a
tool declares an output schema, its `callTool` validates any structuredContent against it, on isError results
too, and throws instead of returning the result
(docs/development/decisions/0011-error-results-without-structured-content.md). `scripts/mcp-ts-client` runs `scripts/ts-client/check.mjs` with the newest 1.x, pinned
in scripts/ts-client/package-lock.json, against `daphne qmailing.asgi:application` on an SQLite file of its own
(as test_inspector does); the accounts, mail and tokens are made there by the real services (write_plan, run
with `manage.py shell`). The first run installs Node 22 and the SDK from the npm registry into
.cache/mcp-ts-client/; if that fails, the test fails (it is never skipped for want of npm). Like the Inspector
test it does not depend on the suite's database, so CI runs it in its SQLite pass only
(QMAILING_SKIP_INSPECTOR=1 skips both in the PostgreSQL pass, .ci/run).
"""

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from tests.agent.mcp.conftest import skip_node_checks
from tests.agent.mcp.test_daphne import _manage, migrated_sqlite_env
from tests.dnsserver import DnsServer
from tests.faults import daphne
from tests.qmailing.test_permission_matrix import WEBHOOK_HOST

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "mcp-ts-client"

pytestmark = [
    pytest.mark.node_client,
    skip_node_checks,
]

# Each error family: the token, the tool and the problem code; the arguments come from write_plan.
FAMILIES = {
    "not found": ("owner", "qmailing_get_email", "not_found"),
    "invalid input": ("owner", "qmailing_get_email", "validation_error"),
    "too large": ("owner", "qmailing_get_attachment", "attachment_too_large"),
    "missing scope": ("drafts_only", "qmailing_send_email", "insufficient_scope"),
    "plan required": ("free", "qmailing_get_email", "plan_required"),
    "daily cap": ("free", "qmailing_list_mailboxes", "daily_cap_reached"),
}


def write_plan(path, url):
    """Run in the server's own database (`manage.py shell`): seed it by the real services and write the client's
    plan to `path`. The owner (PRO_MAX, every tool) calls every tool as test_matrix's happy paths do, then the
    error families; the FREE account makes a plan refusal (never counted), its 25 calls of the day, then one more."""
    from accounts.models import Plan
    from agent.operations import registry
    from mailboxes.inbound.ingest import email_ingest
    from mailboxes.store.download import INLINE_ATTACHMENT_BYTES
    from tests.agent.mcp.test_matrix import succeeding_calls
    from tests.api_helpers import ALL_SCOPES, token_for
    from tests.conftest import make_user
    from tests.mailboxes.inbound_helpers import make_message
    from tests.qmailing.test_permission_matrix import make_owner_objects

    owner = make_user("owner@example.org", plan=Plan.PRO_MAX).account
    outsider = make_user("outsider@example.net").account
    free = make_user("free@example.com", plan=Plan.FREE).account
    objects = make_owner_objects(owner)
    scan = email_ingest(mailbox=owner.mailboxes.get(), raw=make_message(subject="A large scan", attachments=[
        ("scan.bin", "application/octet-stream", b"\0" * (INLINE_ATTACHMENT_BYTES + 1))]))
    tokens = {"owner": token_for(owner),
              "drafts_only": token_for(owner, scopes=ALL_SCOPES.replace("email:send", "").strip()),
              "free": token_for(free, scopes="mailbox:read email:read")}
    calls = [{"token": "owner", "tool": name, "arguments": arguments, "expect": "ok"}
             for name, arguments in succeeding_calls(owner, outsider, objects, names=list(registry()), tag="ts")]
    arguments = {
        "not found": {"email_id": str(uuid.uuid4())},
        "invalid input": {"email_id": "not-an-id", "max_chars": -1},
        "too large": {"email_id": str(scan.id), "index": 0},
        "missing scope": {"mailbox_id": str(objects["mailbox_id"]), "to": [outsider.mailboxes.get().address],
                          "text": "Sent by an agent that may only draft."},
        "plan required": {"email_id": str(objects["email_id"])},
        "daily cap": {},
    }
    for family, (token, tool, code) in FAMILIES.items():
        if family == "daily cap":
            cap = free.plan.daily_request_cap
            calls += [{"token": "free", "tool": tool, "arguments": {}, "expect": "ok"}] * cap
        calls.append({"token": token, "tool": tool, "arguments": arguments[family], "expect": code})
    Path(path).write_text(json.dumps({"url": url, "tokens": tokens, "calls": calls}))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """(the client's summary, the server's base URL) after one run of scripts/mcp-ts-client."""
    tmp_path = tmp_path_factory.mktemp("ts-client")
    dns = DnsServer()
    dns.add(*WEBHOOK_HOST)
    dns.start()
    try:
        env = {**migrated_sqlite_env(tmp_path), "QMAILING_DNS_RESOLVERS": f"127.0.0.1:{dns.port}",
               "QMAILING_EVENTS_WAIT_MAX_SECONDS": "1"}
        with daphne(env, tmp_path / "daphne.log") as base_url:
            plan = tmp_path / "plan.json"
            _manage({**env, "QMAILING_BASE_URL": base_url}, "shell", "-c",
                    f"from tests.agent.mcp.test_ts_client import write_plan; write_plan({str(plan)!r}, "
                    f"{base_url + '/mcp'!r})")
            try:
                done = subprocess.run([str(SCRIPT), str(plan)], cwd=ROOT, capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                pytest.fail("scripts/mcp-ts-client did not finish in 15 minutes (stuck installing from npm?)")
            if done.returncode == 70:
                pytest.fail(f"scripts/mcp-ts-client could not install Node 22 / the MCP TypeScript SDK from the npm "
                            f"registry; CI needs it. Its output:\n{done.stderr[-4000:]}")
            assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-6000:]}\n{done.stdout[-2000:]}"
            yield json.loads(done.stdout), base_url
    finally:
        dns.stop()


def test_the_newest_1x_sdk_reads_every_result(checked):
    summary, _ = checked
    pins = json.loads((ROOT / "scripts" / "ts-client" / "package.json").read_text())
    assert summary["sdk"] == pins["dependencies"]["@modelcontextprotocol/sdk"] and summary["sdk"].startswith("1.")
    assert summary["failures"] == [] and not any("threw" in result for result in summary["results"])
    assert summary["listed"]["owner"]["nextCursor"] is None  # one page: every output schema cached


def test_every_tool_succeeds(checked):
    from agent.operations import registry

    summary, _ = checked
    succeeded = {result["tool"] for result in summary["results"] if result["token"] == "owner" and
                 result["isError"] is False}
    assert succeeded == set(registry())


def test_every_error_family_is_a_problem_in_the_text(checked):
    summary, base_url = checked
    errors = [result for result in summary["results"] if result["isError"]]
    seen = {(result["token"], result["tool"], result["code"]) for result in errors}
    assert seen == set(FAMILIES.values())
    problems = {result["code"]: result["problem"] for result in errors}
    assert problems["not_found"]["status"] == 404
    assert set(problems["validation_error"]["errors"]) == {"email_id", "max_chars"}
    assert problems["insufficient_scope"]["requiredScopes"] == ["email:send"]
    assert problems["plan_required"]["requiredPlan"] and problems["plan_required"]["upgradeUrl"]
    assert problems["daily_cap_reached"]["retryAfter"] > 0 and problems["daily_cap_reached"]["status"] == 429
    too_large = problems["attachment_too_large"]
    assert too_large["downloadUrl"].startswith(base_url)
    download = requests.get(too_large["downloadUrl"], timeout=30)
    assert download.status_code == 200 and len(download.content) == too_large["size"]


def test_the_free_account_made_its_25_calls_before_the_cap(checked):
    summary, _ = checked
    free = [(result["tool"], result["code"] or "ok") for result in summary["results"] if result["token"] == "free"]
    assert free == [("qmailing_get_email", "plan_required")] + [("qmailing_list_mailboxes", "ok")] * 25 + [
        ("qmailing_list_mailboxes", "daily_cap_reached")]
