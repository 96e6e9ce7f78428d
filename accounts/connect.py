"""What the "Connect to Claude" wizard knows about clients and use cases: labels, scopes, config snippets.

Snippets are plain text built here (JSON through json.dumps, so any URL is quoted correctly) and
HTML-escaped by the template that shows them.
"""

import json
from urllib.parse import urlsplit

from django.conf import settings

from accounts.scopes import EMAIL_SEND, EMAIL_WRITE, READ_ONLY, SCOPES

CLAUDE_DESKTOP, CLAUDE_CODE, CLAUDE_AI, CURSOR, CONTINUE, CUSTOM = (
    "claude_desktop", "claude_code", "claude_ai", "cursor", "continue", "custom")
CLIENTS = {
    CLAUDE_DESKTOP: "Claude Desktop",
    CLAUDE_CODE: "Claude Code",
    CLAUDE_AI: "Claude.ai",
    CURSOR: "Cursor",
    CONTINUE: "Continue",
    CUSTOM: "Custom (curl, scripts, other agents)",
}

READ = READ_ONLY
USE_CASES = {
    "triage": ("Triage: read only", READ),
    "assistant": ("Assistant: read, organise and send", READ + [EMAIL_WRITE, EMAIL_SEND]),
    "automation": ("Automation: everything, webhooks included", list(SCOPES)),
}

MCP_PATH = "/mcp"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
API_PATH = "/api/v1/pub/"
DOCS_PATH = "/docs/mcp"  # the public page on connecting an agent (agent.mcp.docs)


def server_urls():
    base = settings.QMAILING_BASE_URL
    return {"base": base, "mcp": base + MCP_PATH, "api": base + API_PATH, "docs": base + DOCS_PATH}


def _json(value):
    return json.dumps(value, indent=2)


def snippet(*, client, token, urls):
    """(where it goes, the text to paste) for `client`; token is None for Claude.ai (it signs in with OAuth)."""
    bearer = f"Bearer {token}"
    if client == CLAUDE_DESKTOP:
        # mcp-remote bridges Claude Desktop's stdio to our HTTP endpoint. The header goes through an
        # environment variable because Claude Desktop on Windows does not quote spaces inside args.
        args = ["mcp-remote", urls["mcp"], "--header", "Authorization:${QMAILING_AUTH_HEADER}"]
        if urlsplit(urls["mcp"]).scheme == "http" and urlsplit(urls["mcp"]).hostname not in LOOPBACK:
            args.append("--allow-http")  # mcp-remote refuses plain http to anything but localhost otherwise
        config = {"mcpServers": {"qmailing": {
            "command": "npx",
            "args": args,
            "env": {"QMAILING_AUTH_HEADER": bearer},
        }}}
        where = ("claude_desktop_config.json (Claude Desktop → Settings → Developer → Edit Config; on macOS "
                 "~/Library/Application Support/Claude/, on Windows %APPDATA%\\Claude\\). Restart Claude Desktop "
                 "after saving. Needs Node.js for npx.")
        return where, _json(config)
    if client == CLAUDE_CODE:
        # Claude Code's own command; single quotes keep the shell from touching the URL or the header.
        text = f"claude mcp add --transport http --scope user qmailing '{urls['mcp']}' --header 'Authorization: {bearer}'"
        return ("a terminal: Claude Code stores the server in ~/.claude.json for every project (`--scope project` "
                "writes .mcp.json into one project instead). `claude mcp list` shows it."), text
    if client == CURSOR:
        config = {"mcpServers": {"qmailing": {"url": urls["mcp"], "headers": {"Authorization": bearer}}}}
        return "~/.cursor/mcp.json (or .cursor/mcp.json in one project)", _json(config)
    if client == CONTINUE:
        text = "\n".join([
            "mcpServers:",
            "  - name: QMailing",
            "    type: streamable-http",
            f"    url: {json.dumps(urls['mcp'])}",
            "    requestOptions:",
            "      headers:",
            f"        Authorization: {json.dumps(bearer)}",
        ])
        return "~/.continue/config.yaml (or the workspace's config.yaml), under mcpServers", text
    if client == CLAUDE_AI:
        return ("Claude.ai → Settings → Connectors → Add custom connector. Paste this URL; Claude signs you in "
                "with OAuth and asks you to approve its scopes, so no token is needed."), urls["mcp"]
    text = f'curl -s -H "Authorization: {bearer}" "{urls["api"]}mailboxes?limit=10"'
    return "a terminal (or any HTTP client): the REST API under " + urls["api"], text


# What to ask the agent once it is configured: the cheapest read-only tool, allowed on every plan and scope set
# that includes mailbox:read.
VERIFY_TOOL = "qmailing_list_mailboxes"
VERIFY_PROMPT = "Which mailboxes do I have in QMailing?"


def verify_command(*, token, urls):
    """A curl command that answers 200 with the account's mailboxes when the token works (401 when it does not)."""
    return f'curl -s -i -H "Authorization: Bearer {token}" "{urls["api"]}mailboxes?limit=1"'
