import pytest

from qmailing.errors import (
    AppError, Conflict, Forbidden, Invalid, LimitReached, NotFound, PlanRequired, RateLimited, ScopeMissing, TooLarge,
    Unauthenticated, problem_details,
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
]


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
