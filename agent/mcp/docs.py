"""The public page /docs/mcp: how to connect an agent, generated from what the server really serves.

Tools, scopes, annotations, plans and example prompts come from the operation registry, the scopes
module and the Plan rows; connect snippets from the Developers wizard (accounts.connect); protocol
versions from the SDK. Nothing here is typed twice, so the page cannot drift from the server.
"""

from dataclasses import dataclass

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, KNOWN_PROTOCOL_VERSIONS

from accounts import connect
from accounts.request_log import RETENTION_DAYS
from accounts.scopes import SCOPES
from accounts.selectors import plan_list
from agent.operations import registry

PROMISED_VERSION = "2025-06-18"
PLACEHOLDER_TOKEN = "qm_live_YOUR_TOKEN"


@dataclass
class ToolDoc:
    name: str
    title: str
    description: str
    scope: str
    rest: str
    example_prompt: str
    hints: list
    plans: list  # one bool per plan, in plan order


def _hints(operation):
    notes = operation.annotations
    hints = ["read-only" if notes.read_only else "writes"]
    if notes.destructive:
        hints.append("destructive")
    if notes.idempotent and not notes.read_only:
        hints.append("idempotent")
    if notes.open_world:
        hints.append("reaches people outside (open world)")
    return hints


@require_GET
def mcp_docs(request):
    plans = plan_list()
    urls = connect.server_urls()
    tools = [ToolDoc(name=op.name, title=op.title, description=op.description, scope=op.scope,
                     rest=f"{op.method} {op.rest_path}", example_prompt=op.example_prompt, hints=_hints(op),
                     plans=[plan.allows_group(op.plan_group) for plan in plans])
             for op in registry().values()]
    scopes = [(scope, words, [tool.name for tool in tools if tool.scope == scope]) for scope, words in SCOPES.items()]
    clients = []
    for key, label in connect.CLIENTS.items():
        where, text = connect.snippet(client=key, token=None if key == connect.CLAUDE_AI else PLACEHOLDER_TOKEN,
                                      urls=urls)
        clients.append({"key": key, "label": label, "where": where, "text": text})
    return render(request, "docs/mcp.html", {
        "urls": urls, "tools": tools, "scopes": scopes, "plans": plans, "clients": clients,
        "versions": KNOWN_PROTOCOL_VERSIONS, "handshake_versions": HANDSHAKE_PROTOCOL_VERSIONS,
        "promised_version": PROMISED_VERSION, "per_minute": settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE,
        "log_days": RETENTION_DAYS, "token_days": settings.QMAILING_PERSONAL_TOKEN_DAYS,
    })
