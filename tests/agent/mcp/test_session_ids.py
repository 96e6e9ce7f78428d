"""Under `run_all --web-workers N` a web process's session ids carry its index (QMAILING_WEB_WORKER), which the
front (qmailing.front) routes by; the tagged id works for every request of its session and for the caps."""

import pytest

from qmailing.front import worker_of_session
from tests.agent.mcp.test_bounds import _alive, _open
from tests.api_helpers import token_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


def test_a_web_process_tags_its_session_ids_with_its_index(mcp_url, owner, settings):
    settings.QMAILING_WEB_WORKER = "3"
    settings.QMAILING_MCP_SESSIONS_PER_TOKEN = 2
    token = token_for(owner)
    first, _ = _open(mcp_url, token)
    assert first.startswith("w3-") and worker_of_session(first.encode()) == 3
    assert _alive(mcp_url, token, first)
    second, _ = _open(mcp_url, token)
    assert _alive(mcp_url, token, second)  # the second is now the most recently active
    third, _ = _open(mcp_url, token)  # at the cap of 2: the oldest idle one, `first`, is evicted by its tagged id
    assert not _alive(mcp_url, token, first)
    assert _alive(mcp_url, token, second) and _alive(mcp_url, token, third)


def test_a_single_web_process_mints_the_sdks_ids(mcp_url, owner, settings):
    settings.QMAILING_WEB_WORKER = ""
    session, _ = _open(mcp_url, token_for(owner))
    assert worker_of_session(session.encode()) is None and len(session) == 32
