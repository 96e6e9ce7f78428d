"""The permission matrix, generated from the operation registry: a new operation is in it automatically.

Every operation × {no token, malformed token, revoked token, outsider's token on the owner's object, token
missing the scope, account on a lower plan, the owner's token limited to another mailbox, the owner's token
limited to the objects' mailbox} must answer exactly the status and problem code of docs/agents/rest.md (Gates).
"""

import uuid

import pytest
from django.urls import resolve

from accounts.models import Plan
from accounts.scopes import SCOPES
from accounts.tokens import token_lookup, token_revoke
from accounts.selectors import plan_list
from accounts.services import account_set_plan
from agent.rest import api_not_found
from agent.operations import registry
from tests.api_helpers import call, token_for
from tests.api_helpers import problem_of as _problem

OPERATIONS = sorted(registry())
CASES = ["no_token", "malformed_token", "revoked_token", "outsider", "missing_scope", "lower_plan",
         "limited_elsewhere", "limited_here"]


# The register example's host, and the address the DNS server must give it: a public one.
WEBHOOK_HOST = ("hooks.example.com", "A", "93.184.215.14")


@pytest.fixture
def owner_objects(owner, dns_server):
    """The owner's objects, by the name of the argument that takes their id."""
    dns_server.add(*WEBHOOK_HOST)
    return make_owner_objects(owner)


def make_owner_objects(owner):
    """owner_objects, made by the real services (the resolvers must answer WEBHOOK_HOST)."""
    from domains.services import domain_add
    from mailboxes.inbound.ingest import email_ingest
    from mailboxes.store.drafts import draft_create
    from tests.mailboxes.inbound_helpers import make_message
    from webhooks.services import webhook_register

    mailbox = owner.mailboxes.get()
    email = email_ingest(mailbox=mailbox, raw=make_message(subject="For the owner only",
                                                           attachments=[("notes.txt", "text/plain", b"owner notes")]))
    draft = draft_create(account=owner, mailbox=mailbox, to=["someone@example.org"], text="For the owner only")
    webhook, _ = webhook_register(account=owner, url=f"https://{WEBHOOK_HOST[0]}/owner", event_types=["*"])
    return {"webhook_id": webhook.id, "draft_id": draft.id, "mailbox_id": mailbox.id,
            "domain_id": domain_add(account=owner, name="brand.example").id, "email_id": email.id,
            "thread_id": email.thread_id, "reply_to_email_id": email.id}


def sample_args(operation, objects):
    """Arguments for a call aimed at the owner's objects: every *_id field gets the owner's object."""
    examples = (operation.input.model_config.get("json_schema_extra") or {}).get("examples") or [{}]
    args = dict(examples[0])
    for name in operation.input.model_fields:
        if name.endswith("_id"):
            assert name in objects, f"{operation.name}: add an owner object for {name} to owner_objects"
            args[name] = objects[name]
    return {k: v for k, v in args.items() if v is not None}


def other_mailbox(account):
    """A second mailbox of `account` on the shared domain: the owner's objects are all in its first one."""
    from domains.services import shared_domain_get
    from mailboxes.services import mailbox_create

    return mailbox_create(account=account, domain=shared_domain_get(), local_part=f"elsewhere-{uuid.uuid4().hex[:8]}")


def _same_problem(first, second):
    return {k: v for k, v in first.items() if k != "instance"} == {k: v for k, v in second.items() if k != "instance"}


def _plan_below(group):
    plans = plan_list()
    lowest = next(p for p in plans if p.allows_group(group))
    below = [p for p in plans if p.rank < lowest.rank]
    return (below[-1], lowest) if below else (None, lowest)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", OPERATIONS)
def test_permission_matrix(client, owner, outsider, owner_objects, name, case):
    operation = registry()[name]
    args = sample_args(operation, owner_objects)
    if case == "no_token":
        response = call(client, operation, args=args)
        _problem(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")
    elif case == "malformed_token":
        _problem(call(client, operation, args=args, authorization="Bearer qm_live_not-a-real-token"), 401, "unauthenticated")
    elif case == "revoked_token":
        token = token_for(owner)
        token_revoke(account=owner, token_id=token_lookup(token).pk)
        _problem(call(client, operation, token=token, args=args), 401, "unauthenticated")
    elif case == "outsider":
        account_set_plan(account=outsider, plan_code=Plan.PRO_MAX)  # every gate passes; only ownership is left
        token = token_for(outsider)
        response = call(client, operation, token=token, args=args)
        if any(n.endswith("_id") for n in args):
            body = _problem(response, 404, "not_found")
            # The same answer as for an id that exists nowhere: nothing tells "not yours" from "no such".
            missing = {k: (uuid.uuid4() if k.endswith("_id") else v) for k, v in args.items()}
            nowhere = _problem(call(client, operation, token=token, args=missing), 404, "not_found")
            assert _same_problem(body, nowhere)
        else:  # a list (or a create): the outsider's own, never the owner's
            assert response.status_code == operation.success_status, response.content
            assert all(str(v) not in response.content.decode() for v in owner_objects.values())
    elif case == "limited_elsewhere":
        # The owner's own token, limited to a mailbox that holds none of the objects: they answer exactly as
        # another account's do, and what acts on the whole account is refused.
        account_set_plan(account=owner, plan_code=Plan.PRO_MAX)
        token = token_for(owner, mailbox_ids=[other_mailbox(owner).pk])
        response = call(client, operation, token=token, args=args)
        if operation.account_wide:
            body = _problem(response, 403, "token_limited_to_mailboxes")
            assert "all mailboxes" in body["detail"]
        elif any(n.endswith("_id") for n in args):
            body = _problem(response, 404, "not_found")
            missing = {k: (uuid.uuid4() if k.endswith("_id") else v) for k, v in args.items()}
            assert _same_problem(body, _problem(call(client, operation, token=token, args=missing), 404, "not_found"))
        else:  # a list or a search: only the chosen mailbox's, so none of the objects
            assert response.status_code == operation.success_status, response.content
            assert all(str(v) not in response.content.decode() for v in owner_objects.values())
    elif case == "limited_here":
        # Limited to the objects' mailbox: every operation within it works as for a token for every mailbox.
        account_set_plan(account=owner, plan_code=Plan.PRO_MAX)
        elsewhere = other_mailbox(owner)  # the account has more mailboxes than the token reaches
        token = token_for(owner, mailbox_ids=[owner_objects["mailbox_id"]])
        if name == "qmailing_wait_for_events":
            args["timeout_seconds"] = 0  # the long-poll's recheck reads from another connection than this test's
        response = call(client, operation, token=token, args=args)
        if operation.account_wide:
            _problem(response, 403, "token_limited_to_mailboxes")
        elif operation.annotations.read_only and any(n.endswith("_id") for n in args):
            assert response.status_code == 200, response.content
            unlimited = call(client, operation, token=token_for(owner), args=args)
            assert response.json() == unlimited.json()
        elif operation.annotations.read_only:  # a list or a search: the chosen mailbox's, not the other one's
            assert response.status_code == 200, response.content
            assert str(elsewhere.pk) not in response.content.decode()
        else:
            assert response.status_code == operation.success_status, (name, response.content)
    elif case == "missing_scope":
        account_set_plan(account=owner, plan_code=_plan_below(operation.plan_group)[1].code)  # the plan gate passes
        others = " ".join(s for s in SCOPES if s != operation.scope)
        body = _problem(call(client, operation, token=token_for(owner, scopes=others), args=args), 403, "insufficient_scope")
        assert body["requiredScopes"] == [operation.scope]
    elif case == "lower_plan":
        below, required = _plan_below(operation.plan_group)
        if below is None:
            pytest.skip(f"{name} is on every plan")
        account_set_plan(account=owner, plan_code=below.code)
        body = _problem(call(client, operation, token=token_for(owner), args=args), 402, "plan_required")
        assert body["requiredPlan"] == required.code and body["upgradeUrl"].startswith("http")


def test_every_operation_has_its_route_and_every_api_route_an_operation(db):
    for operation in registry().values():
        path = operation.rest_path
        for param in operation.path_params:
            path = path.replace("{" + param + "}", str(uuid.uuid4()))
        match = resolve(path)
        assert match.func is not api_not_found, operation.name
        assert operation in match.func.view_class.operations.values()
    assert resolve("/api/v1/pub/no-such-thing").func is api_not_found


def test_matrix_covers_the_twelve_plus_what_is_declared():
    # Every operation named here must be declared; a new one joins the matrix above by itself.
    assert {"qmailing_list_mailboxes", "qmailing_get_mailbox", "qmailing_create_mailbox", "qmailing_list_domains",
            "qmailing_get_dns_records", "qmailing_list_emails", "qmailing_get_email", "qmailing_search_emails",
            "qmailing_list_threads", "qmailing_get_thread", "qmailing_update_email", "qmailing_send_email",
            "qmailing_get_attachment", "qmailing_add_domain", "qmailing_verify_domain", "qmailing_forward_email",
            "qmailing_create_draft", "qmailing_update_draft", "qmailing_list_drafts", "qmailing_delete_draft",
            "qmailing_send_draft", "qmailing_wait_for_events", "qmailing_list_webhooks", "qmailing_register_webhook",
            "qmailing_delete_webhook"} <= set(OPERATIONS)
