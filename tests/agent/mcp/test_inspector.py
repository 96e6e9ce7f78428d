"""The MCP Inspector CLI against a real server: `scripts/mcp-inspector`, as a person or CI would run it.

The server is `daphne qmailing.asgi:application` in a subprocess on its own migrated SQLite file (as in
test_daphne), with the demo account and a token made there by the management commands. The Inspector
runs `tools/list --strict` (schema portability: exits non-zero on any error-severity finding) on both
protocol eras, a `tools/call`, and a call refused (an error result, which the Inspector must show rather than
throw on: decision 0011). The first run installs Node 22 and the Inspector from the npm
registry into .cache/mcp-inspector/; if that fails, the test fails (it is never skipped for want of
npm). It does not depend on the suite's database, so CI runs it in its SQLite pass only and sets
QMAILING_SKIP_INSPECTOR=1 for the PostgreSQL pass (.ci/run).
"""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from accounts.scopes import SCOPES
from tests.agent.mcp.conftest import skip_node_checks
from tests.agent.mcp.test_daphne import _manage, migrated_sqlite_env
from tests.faults import daphne

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "mcp-inspector"

pytestmark = [
    pytest.mark.inspector,
    skip_node_checks,
]


@pytest.fixture(scope="module")
def daphne_server(tmp_path_factory):
    """(MCP URL, token) of a daphne subprocess on its own SQLite database."""
    tmp_path = tmp_path_factory.mktemp("inspector")
    env = migrated_sqlite_env(tmp_path)
    _manage(env, "create_demo")
    _manage(env, "set_plan", "demo@example.com", "PRO")  # every tool is shown: a full-scope PRO token
    token = _manage(env, "issue_token", "demo@example.com", "--client", "MCP Inspector",
                    "--scopes", " ".join(SCOPES)).strip()
    with daphne(env, tmp_path / "daphne.log") as base_url:
        yield f"{base_url}/mcp", token


def inspector(url, token, *args, exit_code=0):
    """Run scripts/mcp-inspector; the parsed `result` of its JSON output. Fails on any exit but `exit_code`."""
    started = time.monotonic()
    try:
        done = subprocess.run([str(SCRIPT), url, token, *args, "--format", "json"], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/mcp-inspector did not finish in 15 minutes (stuck installing from npm?)")
    if done.returncode == 70:  # the script's own code: installing Node 22 / the Inspector failed
        pytest.fail(f"scripts/mcp-inspector could not install or start Node 22 / the MCP Inspector from the npm "
                    f"registry (exit {done.returncode}); CI needs it. Its output:\n{done.stderr[-4000:]}")
    assert done.returncode == exit_code, (f"the Inspector exited {done.returncode} for {' '.join(args)} after "
                                  f"{time.monotonic() - started:.1f}s:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}")
    return json.loads(done.stdout)["result"]


def expected_tools():
    from agent.operations import registry

    return set(registry())


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_tools_list_is_strict_clean(daphne_server, era):
    url, token = daphne_server
    result = inspector(url, token, "--method", "tools/list", "--strict", "--protocol-era", era)
    listed = {tool["name"] for tool in result["tools"]}
    assert listed == expected_tools()
    assert all(tool.get("inputSchema") and tool.get("outputSchema") for tool in result["tools"])


def test_tools_call(daphne_server):
    url, token = daphne_server
    result = inspector(url, token, "--method", "tools/call", "--tool-name", "qmailing_list_mailboxes")
    assert result["isError"] is False
    assert result["structuredContent"]["items"][0]["address"].startswith("demo@")


def test_an_error_result_is_shown_not_thrown(daphne_server):
    url, token = daphne_server
    missing = str(uuid.uuid4())
    # Exit 5 is the CLI's "the tool returned isError" (the result read, as opposed to an SDK error).
    result = inspector(url, token, "--method", "tools/call", "--tool-name", "qmailing_get_email",
                       "--tool-arg", f"email_id={missing}", exit_code=5)
    assert result["isError"] is True and "structuredContent" not in result
    [block] = result["content"]
    headline, problem = block["text"].split("\n")
    problem = json.loads(problem)
    assert (problem["code"], problem["status"]) == ("not_found", 404) and headline == problem["detail"]
