"""The public /docs/mcp page and the error docs: generated from what the server serves, so they cannot drift."""

import re
from pathlib import Path

from accounts.scopes import SCOPES
from accounts.selectors import plan_list
from agent.operations import registry

ROOT = Path(__file__).resolve().parents[3]


def test_the_mcp_page_lists_every_tool_scope_plan_and_client(client, db):
    response = client.get("/docs/mcp")
    assert response.status_code == 200
    page = response.content.decode()
    assert "http://localhost:8000/mcp" in page or "/mcp</code>" in page
    assert "2025-06-18" in page and "Streamable HTTP" in page
    for operation in registry().values():
        assert f'id="{operation.name}"' in page, operation.name
        assert operation.example_prompt.replace("'", "&#x27;") in page, operation.name
    for scope in SCOPES:
        assert f"<code>{scope}</code>" in page
    for plan in plan_list():
        assert f"<th>{plan.name}</th>" in page
    for client_name in ("Claude Desktop", "Claude.ai", "Cursor", "Continue"):
        assert client_name in page
    for status in ("HTTP 401", "(402)", "(403)", "HTTP 429"):
        assert status in page
    assert "SHA-256" in page and "bcrypt" in page and "30 days" in page
    assert "qm_live_YOUR_TOKEN" in page  # a placeholder, never a real token


def test_every_error_code_raised_anywhere_is_documented(client, db):
    page = client.get("/docs/errors").content.decode()
    codes = set()
    for app in ("accounts", "domains", "mailboxes", "core", "agent", "qmailing", "webhooks"):
        for path in (ROOT / app).rglob("*.py"):
            codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', path.read_text()))
    missing = sorted(code for code in codes if f'id="{code}"' not in page)
    assert not missing, f"add these codes to templates/docs/errors.html: {missing}"
