import pytest

from core.errors import (
    AppError, Conflict, Forbidden, Invalid, LimitReached, MethodNotAllowed, NotAcceptable, NotFound, PlanRequired,
    RateLimited, ScopeMissing, ServerError, TooLarge, Unauthenticated, UnsupportedMediaType, problem_details,
)

CASES = [
    (Invalid("Fix the name.", field="name"), 400, {"errors": {"name": ["Fix the name."]}}),
    (Unauthenticated("Sign in."), 401, {}),
    (PlanRequired("Upgrade to PLUS.", required_plan="PLUS"), 402, {"requiredPlan": "PLUS"}),
    (LimitReached("No more mailboxes.", limit="mailboxes"), 402, {"limit": "mailboxes"}),
    (ScopeMissing("Needs email:send.", required_scopes=["email:send"]), 403, {"requiredScopes": ["email:send"]}),
    (Forbidden("No."), 403, {}),
    (NotFound("No such mailbox."), 404, {}),
    (Conflict("Taken.", code="domain_taken"), 409, {}),
    (Conflict("Generic."), 409, {}),
    (TooLarge("Too big."), 413, {}),
    (RateLimited("Slow down.", retry_after=12.7), 429, {"retryAfter": 12}),
    (RateLimited("Come back tomorrow.", retry_after=3600, code="daily_cap_reached"), 429, {"retryAfter": 3600}),
    (Invalid("Not JSON.", field="body", code="malformed_request"), 400, {"errors": {"body": ["Not JSON."]}}),
    (NotFound("No such endpoint.", code="endpoint_not_found"), 404, {}),
    (MethodNotAllowed("No DELETE here."), 405, {}),
    (NotAcceptable("JSON only."), 406, {}),
    (UnsupportedMediaType("Send JSON."), 415, {}),
    (ServerError("Our fault."), 500, {}),
]


def test_http_headers_stay_out_of_the_body():
    unauthenticated = Unauthenticated("Who are you?", bearer_error="invalid_token")
    assert unauthenticated.headers == {"WWW-Authenticate": 'Bearer realm="QMailing", error="invalid_token"'}
    assert Unauthenticated("Sign in.").headers == {"WWW-Authenticate": 'Bearer realm="QMailing"'}
    limited = RateLimited("Slow down.", retry_after=12.7)
    assert limited.headers == {"Retry-After": "12"}
    assert "headers" not in problem_details(limited) and "WWW-Authenticate" not in problem_details(unauthenticated)


@pytest.mark.parametrize("error, status, extra", CASES, ids=lambda c: getattr(c, "code", None))
def test_every_error_renders_rfc9457_problem_details(settings, error, status, extra):
    body = problem_details(error, instance="/api/v1/pub/mailboxes")
    assert body["status"] == status == error.status
    assert body["type"].startswith("http") and body["type"].endswith("#" + error.code)
    assert body["title"] == type(error).title and body["detail"] == error.detail and body["code"] == error.code
    assert body["instance"] == "/api/v1/pub/mailboxes"
    for key, value in extra.items():
        assert body[key] == value
    if status == 402:
        assert body["upgradeUrl"].startswith("http")
    assert "Traceback" not in str(body)


def test_codes_are_stable_snake_case():
    import re

    for error, _, _ in CASES:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
    assert issubclass(NotFound, AppError)


def test_error_docs_page_names_every_code(client):
    page = client.get("/docs/errors").content.decode()
    for error, _, _ in CASES:
        assert f'id="{error.code}"' in page
