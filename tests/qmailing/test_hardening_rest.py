"""The REST side of the agent surface under a hostile customer: long-polls re-check their token when they wake
and are capped per account, and JSON of any bad shape is a 400 problem, never a 500. Over real HTTP (the
ASGI app under uvicorn), as a client sees it."""

import json
import threading

import pytest
import requests

from accounts.tokens import token_lookup, token_revoke
from tests.api_helpers import problem_of, token_for, tool_problem, waiting
from tests.agent.mcp.conftest import asgi_server, base, mcp_url, rpc  # noqa: F401 — fixtures
from tests.agent.mcp.test_resources import _ingest_in_thread
from tests.timing import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the server thread sees the rows


def _wait(base, token, seconds, results, key):
    response = requests.get(f"{base}/api/v1/pub/events", params={"timeout_seconds": seconds}, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})
    results[key] = response


def test_a_long_poll_waiting_when_its_token_is_revoked_answers_401_not_the_new_mail(base, owner):
    token = token_for(owner, scopes="email:read")
    results = {}
    waiter = threading.Thread(target=_wait, args=(base, token, 10, results, "wait"))
    waiter.start()
    wait_until(lambda: waiting(owner), 20, "the long-poll waiting")
    token_revoke(account=owner, token_id=token_lookup(token).pk)
    thread, _ = _ingest_in_thread(owner.mailboxes.get(), "Secret subject after the revocation", delay=0)
    thread.join()
    waiter.join()
    response = results["wait"]
    problem_of(response, 401, "unauthenticated")
    assert "Secret subject" not in response.text and "email.received" not in response.text


def test_the_mcp_long_poll_re_checks_its_token_too(mcp_url, owner):
    token = token_for(owner, scopes="email:read")
    results = {}

    def call():
        results["call"] = rpc(mcp_url, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "qmailing_wait_for_events", "arguments": {"timeout_seconds": 10},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                      "io.modelcontextprotocol/clientCapabilities": {}}}}, token=token, version="2026-07-28")

    waiter = threading.Thread(target=call)
    waiter.start()
    wait_until(lambda: waiting(owner), 20, "the MCP long-poll waiting")
    token_revoke(account=owner, token_id=token_lookup(token).pk)
    thread, _ = _ingest_in_thread(owner.mailboxes.get(), "Secret subject after the revocation", delay=0)
    thread.join()
    waiter.join()
    response, reply = results["call"]
    assert response.status_code == 200
    result = reply["result"]
    tool_problem(result, "unauthenticated")
    assert "Secret subject" not in response.text


def test_rest_long_polls_are_capped_per_account(base, owner, outsider, settings):
    settings.QMAILING_REST_WAITS_PER_ACCOUNT = 2
    token = token_for(owner, scopes="email:read")
    results = {}
    waiters = [threading.Thread(target=_wait, args=(base, token, 3, results, n)) for n in range(2)]
    for waiter in waiters:
        waiter.start()
    wait_until(lambda: waiting(owner) >= 2, 20, "both long-polls waiting")
    refused = requests.get(f"{base}/api/v1/pub/events", params={"timeout_seconds": 3}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    body = problem_of(refused, 429, "too_many_waits")
    assert body["limit"] == 2 and int(refused.headers["Retry-After"]) > 0
    no_wait = requests.get(f"{base}/api/v1/pub/events", params={"timeout_seconds": 0}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert no_wait.status_code == 200  # a read that does not wait holds no slot
    other = threading.Thread(target=_wait, args=(base, token_for(outsider, scopes="email:read"), 1, results, "other"))
    other.start()
    other.join()
    assert results["other"].status_code == 200  # another account is unaffected
    for waiter in waiters:
        waiter.join()
    assert [results[n].status_code for n in range(2)] == [200, 200]
    again = requests.get(f"{base}/api/v1/pub/events", params={"timeout_seconds": 0.5}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200  # the slots were given back


MALFORMED = {
    "depth 10,000": b"[" * 10_000 + b"]" * 10_000,
    "an object 10,000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "depth 65": b'{"local_part": "x", "a": ' + b"[" * 65 + b"]" * 65 + b"}",
    "NaN": b'{"local_part": NaN}',
    "1e999": b'{"local_part": 1e999}',
    "a 5,000-digit integer": b'{"local_part": ' + b"9" * 5000 + b"}",
    "not UTF-8": b'{"local_part": "\xff"}',
    "a lone surrogate": b'{"local_part": "\\udc00"}',
    "truncated": b'{"local_part": "x"',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_a_400_problem(base, owner, body):
    response = requests.post(f"{base}/api/v1/pub/mailboxes", data=body, timeout=30, headers={
        "Authorization": f"Bearer {token_for(owner)}", "Content-Type": "application/json"})
    body = problem_of(response, 400, "malformed_request")
    assert body["errors"] == {"body": [body["detail"]]} or "body" in body.get("errors", {})


def test_the_django_test_client_sees_the_same(client, owner):
    response = client.generic("POST", "/api/v1/pub/mailboxes", b"[" * 10_000 + b"]" * 10_000,
                              content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_for(owner)}")
    assert response.status_code == 400 and json.loads(response.content)["code"] == "malformed_request"


def test_dynamic_client_registration_refuses_deep_json_with_a_400(client):
    response = client.generic("POST", "/oauth/register/", b"[" * 10_000 + b"]" * 10_000,
                              content_type="application/json")
    assert response.status_code == 400
    assert json.loads(response.content)["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("path", ["/anymail/mailgun/tracking/", "/anymail/mailgun/inbound/",
                                  "/anymail/mailgun/inbound_mime/"])
@pytest.mark.parametrize("body", [b"[" * 10_000 + b"]" * 10_000, b'{"signature": NaN}', b'{"x": 1e999}'],
                         ids=["depth 10,000", "NaN", "1e999"])
def test_esp_webhooks_refuse_malformed_json_with_a_400_before_any_view(client, settings, path, body):
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = "key-test"  # configured, as a deployment that receives mail is
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "key-test"}
    response = client.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400 and json.loads(response.content)["code"] == "malformed_request"
