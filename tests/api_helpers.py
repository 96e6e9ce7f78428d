"""Calling the generated REST API as an agent would: tokens issued through the real service, curl-like requests."""

import json
import re
from urllib.parse import urlencode

from accounts.scopes import SCOPES
from accounts.tokens import token_issue

ALL_SCOPES = " ".join(SCOPES)


def token_for(account, scopes=ALL_SCOPES, client="Test client", mailbox_ids=None):
    """A personal token of `account` (limited to `mailbox_ids` when given), issued through the real service."""
    user = account.users.order_by("pk").first()
    plaintext, _ = token_issue(account=account, user=user, client=client, scopes=scopes, mailbox_ids=mailbox_ids)
    return plaintext


def call(client, operation, token=None, args=None, authorization=None):
    """One REST call of `operation`: path parameters filled from args, the rest as query string or JSON body."""
    args = dict(args or {})
    path = operation.rest_path
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace("{" + name + "}", str(args.pop(name)))
    headers = {}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    elif token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if operation.method in ("POST", "PATCH", "PUT"):
        return client.generic(operation.method, path, json.dumps(args, default=str), content_type="application/json", **headers)
    pairs = [(k, item) for k, v in args.items() for item in (v if isinstance(v, (list, tuple)) else [v])]
    return client.generic(operation.method, path, QUERY_STRING=urlencode(pairs), **headers)


def waiting(account):
    """How many waits on `account`'s event log (REST and MCP long-polls, subscriptions) are registered in this
    process: the readiness signal of a test that acts while they wait (the servers of the tests run in it)."""
    from events.stream import _waiters

    with _waiters._lock:
        return len(_waiters._by_account.get(str(account.pk), ()))


def problem_of(response, status, code):
    """The RFC 9457 problem-details body of `response` (requests or Django), checked: the HTTP status, the media
    type, `status` and `code`, a `type` URL naming the code, a title and a detail, and no traceback or HTML page."""
    assert response.status_code == status, (response.status_code, getattr(response, "text", response.content))
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].startswith("http") and body["type"].endswith("#" + code) and body["title"] and body["detail"]
    text = response.content.decode()
    assert "Traceback" not in text and "Traceback" not in json.dumps(body) and "<html" not in text.lower()
    return body


def tool_problem(result, code=None):
    """The problem object of an MCP isError tool result (the SDK's CallToolResult, or the JSON-RPC `result` as a
    dict), checked as agent.mcp.tools.error_result promises: isError, no structured content, one text block whose
    first line is the detail and whose second is the whole problem as JSON (with `code`, if given)."""
    if isinstance(result, dict):
        assert "structuredContent" not in result, result  # absent, not null: a null fails TypeScript clients' schema
        is_error, structured = result.get("isError"), None
        texts = [block["text"] for block in result["content"] if block["type"] == "text"]
    else:
        is_error, structured = result.is_error, result.structured_content
        texts = [block.text for block in result.content if block.type == "text"]
    assert is_error is True, result
    assert structured is None, f"an error result carries structuredContent: {structured}"
    assert len(texts) == 1, texts
    headline, _, rest = texts[0].partition("\n")
    problem = json.loads(rest)
    assert headline == " ".join(problem["detail"].split()) and headline, texts[0]
    assert problem["type"].endswith("#" + problem["code"]) and problem["title"] and problem["status"] >= 400
    assert "Traceback" not in texts[0]
    if code is not None:
        assert problem["code"] == code, problem
    return problem
