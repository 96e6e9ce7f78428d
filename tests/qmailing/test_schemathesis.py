"""Schemathesis against the SERVED OpenAPI document (/api/v1/pub/openapi.json), in-process over WSGI.

Every operation of the document, all of schemathesis' checks (server errors, status codes, content types,
headers, response schemas, positive/negative data, auth...), a bounded and derandomized example budget, as an
owner on PRO with every scope so the gates let the calls reach the operations. Path parameters of positive
cases point at the owner's real objects half of the time, so success answers are checked too, not only 404s.
"""

import zlib

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api_helpers import token_for
from tests.conftest import make_user

MAX_EXAMPLES = 15


@pytest.fixture
def pro_owner(db, settings):
    settings.QMAILING_TOKEN_REQUESTS_PER_MINUTE = 100_000  # the fuzzer is not what the throttle is for
    settings.QMAILING_EVENTS_WAIT_MAX_SECONDS = 0.1  # a long-poll answers the same, only sooner
    account = make_user("fuzz-owner@example.org", plan="PRO").account
    return account


@pytest.fixture
def owner_objects(pro_owner, dns_server):
    from domains.services import domain_add
    from mailboxes.inbound.ingest import email_ingest
    from tests.mailboxes.inbound_helpers import make_message

    mailbox = pro_owner.mailboxes.get()
    email = email_ingest(mailbox=mailbox, raw=make_message(subject="Fuzz me"))
    from mailboxes.store.drafts import draft_create

    domain = domain_add(account=pro_owner, name="fuzz.example")
    draft = draft_create(account=pro_owner, mailbox=mailbox, to=["ada@example.org"], text="Fuzz me")
    from webhooks.services import webhook_register

    dns_server.add("hooks.example.com", "A", "93.184.215.14")
    webhook, _ = webhook_register(account=pro_owner, url="https://hooks.example.com/fuzz", event_types=["*"])
    return {"webhook_id": webhook.id, "draft_id": draft.id, "mailbox_id": mailbox.id, "email_id": email.id, "thread_id": email.thread_id, "domain_id": domain.id}


@pytest.fixture
def token(pro_owner):
    return token_for(pro_owner)


@pytest.fixture
def wsgi_app(db):
    """Django's WSGI app, keeping the test's database connection open between requests (as django.test.Client does)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app, pro_owner, token):
    schema = schemathesis.openapi.from_wsgi("/api/v1/pub/openapi.json", wsgi_app)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case, token, owner_objects):
    if case.path_parameters and case.meta is not None and _positive(case) and zlib.crc32(repr((case.query, case.body)).encode()) % 2:
        for name in case.path_parameters:
            if name in owner_objects:
                case.path_parameters[name] = str(owner_objects[name])
    excluded = []
    if _semantic_fields(case):
        # These values are checked beyond what JSON Schema says, so a schema-valid one may rightly be refused
        # with 400. Every other check (no 5xx, documented status, problem+json, schemas) still applies.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded)


# (method, path) -> fields validated beyond their JSON Schema; a case sending one of them may get a 400.
SEMANTIC_FIELDS = {
    None: {"cursor"},  # opaque, server-issued (core.pagination), on every list
    ("POST", "/api/v1/pub/domains"): {"name"},  # a real domain name with a dot, not reserved
    ("GET", "/api/v1/pub/emails/search"): {"date_from", "date_to"},  # YYYY-MM-DD or an ISO 8601 date-time
    ("POST", "/api/v1/pub/mailboxes/{mailbox_id}/send"): {"to", "cc", "bcc", "attachments"},  # emails, base64
    ("POST", "/api/v1/pub/mailboxes"): {"local_part", "forwarding_addresses"},  # address syntax, reserved role names; emails
    ("POST", "/api/v1/pub/mailboxes/{mailbox_id}/drafts"): {"to", "cc", "bcc", "attachments", "subject"},  # one line
    ("PATCH", "/api/v1/pub/drafts/{draft_id}"): {"to", "cc", "bcc", "attachments", "subject"},
    ("POST", "/api/v1/pub/emails/{email_id}/forward"): {"to", "cc", "bcc"},
    ("POST", "/api/v1/pub/drafts/{draft_id}/send"): {"send_at"},  # in the future, within a year
    ("POST", "/api/v1/pub/webhooks"): {"url", "description"},  # an https URL whose host resolves to public addresses
}


def _semantic_fields(case):
    sent = {name for name, value in {**(case.query or {}), **(case.body if isinstance(case.body, dict) else {})}.items()
            if value not in (None, [], "")}
    fields = SEMANTIC_FIELDS[None] | SEMANTIC_FIELDS.get((case.method.upper(), case.path), set())
    return sent & fields


def _positive(case):
    from schemathesis.generation import GenerationMode

    return case.meta.generation.mode == GenerationMode.POSITIVE
