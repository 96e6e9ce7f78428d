"""The MCP conformance suite (@modelcontextprotocol/conformance) against a real server: `scripts/mcp-conformance`.

The server is `daphne qmailing.asgi:application` on its own migrated SQLite file (as in test_inspector), with the
demo account and a full-scope token. The suite sends no Authorization header and has no option to add one, so
it reaches daphne through tests.bearer_proxy, which adds the token and passes everything else (Host and Origin
included) through unchanged; daphne is configured as a server behind that proxy (the proxy's port and origin
are allowed, as QMAILING_MCP_ALLOWED_PORTS and QMAILING_MCP_ALLOWED_ORIGINS allow a real one's). No setting
admits a request without a token. Each scenario that applies to a server without the reference server's test
tools runs, and every check must pass: no failure, and no warning but the one that needs such a tool
(NEEDS_REFERENCE_FIXTURE). The first run installs Node 22 and the suite from the npm registry into
.cache/mcp-conformance/; if that fails, the test fails. Like the Inspector test it does not depend on the
suite's database, so CI runs it in its SQLite pass only (QMAILING_SKIP_INSPECTOR, .ci/run).
"""

import json
import subprocess
from pathlib import Path

import pytest

from accounts.scopes import SCOPES
from tests.agent.mcp.conftest import skip_node_checks
from tests.agent.mcp.test_daphne import _manage, migrated_sqlite_env
from tests.bearer_proxy import BearerProxy
from tests.faults import daphne

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "mcp-conformance"

# Every server scenario of the pinned suite (`scripts/mcp-conformance --list`) for the handshake versions that
# does not call the reference server's fixtures (test_* tools, test:// resources, prompts, logging, completion).
# resources-subscribe and resources-unsubscribe are among those: they subscribe to the fixture
# `test://watched-resource`, which this server rightly refuses as unknown (subscribing to
# `mailbox://{id}/events` is tested in test_resources). The 2026-07-28 scenarios (server-stateless, ...) call
# diagnostic tools of the reference server too.
SCENARIOS = ["server-initialize", "server-session-lifecycle", "ping", "tools-list", "resources-list",
             "server-sse-multiple-streams", "server-sse-polling", "dns-rebinding-protection"]

# The one check that cannot pass without a reference fixture: server-sse-polling calls the tool
# `test_reconnection`, which closes its stream mid-call; this server answers "unknown tool", and the suite then
# reconnects after that answer and waits for one that never comes. (The priming event, the retry field and
# the replay after a reconnection are checked by the suite's other checks and by test_transport.)
NEEDS_REFERENCE_FIXTURE = {("server-sse-polling", "server-sse-disconnect-resume")}

pytestmark = [
    pytest.mark.inspector,
    skip_node_checks,
]


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory):
    """The MCP URL of the proxy in front of a daphne subprocess on its own SQLite database."""
    tmp_path = tmp_path_factory.mktemp("conformance")
    env = migrated_sqlite_env(tmp_path)
    _manage(env, "create_demo")
    token = _manage(env, "issue_token", "demo@example.com", "--client", "MCP conformance",
                    "--scopes", " ".join(SCOPES)).strip()
    proxy = BearerProxy(token)
    # daphne behind the proxy: the Host and Origin the suite sends name the proxy's address.
    env.update(QMAILING_MCP_ALLOWED_PORTS=str(proxy.port), QMAILING_MCP_ALLOWED_ORIGINS=f"http://127.0.0.1:{proxy.port}")
    with daphne(env, tmp_path / "daphne.log") as base_url:
        proxy.target = ("127.0.0.1", int(base_url.rsplit(":", 1)[1]))
        with proxy:
            yield f"http://127.0.0.1:{proxy.port}/mcp"


def conformance(url, scenario, output_dir):
    """Run one scenario with scripts/mcp-conformance; its checks (the suite's checks.json). Fails when the suite
    could not be installed."""
    try:
        done = subprocess.run([str(SCRIPT), url, "--scenario", scenario, "--output-dir", str(output_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/mcp-conformance did not finish in 15 minutes (stuck installing from npm?)")
    if done.returncode == 70:
        pytest.fail(f"scripts/mcp-conformance could not install or start Node 22 / the conformance suite from the npm "
                    f"registry (exit {done.returncode}); CI needs it. Its output:\n{done.stderr[-4000:]}")
    found = list(output_dir.rglob("checks.json"))
    assert len(found) == 1, f"no checks.json from {scenario} (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(found[0].read_text())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes(mcp_url, scenario, tmp_path):
    status, checks = conformance(mcp_url, scenario, tmp_path)
    problems = [check for check in checks if check["status"] == "FAILURE" or (
        check["status"] == "WARNING" and (scenario, check["id"]) not in NEEDS_REFERENCE_FIXTURE)]
    assert not problems, json.dumps(problems, indent=1)[:6000]
    assert status == 0
    passed = {check["id"] for check in checks if check["status"] == "SUCCESS"}
    assert passed
    if scenario == "server-sse-polling":  # the SEP-1699 checks, which this server passes since it has an event store
        assert {"server-sse-priming-event", "server-sse-retry-field"} <= passed
