"""The operations a token is shown are exactly those the plan and scope gates let it call (agent.gates)."""

import pytest

from accounts.models import Plan
from accounts.scopes import SCOPES
from agent import gates
from agent.operations import registry
from core.errors import PlanRequired, ScopeMissing

pytestmark = pytest.mark.django_db


def _passes_gates(actor, operation):
    try:
        gates.authorize(actor, operation)
    except (PlanRequired, ScopeMissing):
        return False
    return True


@pytest.mark.parametrize("plan_code", ["FREE", "PLUS", "PRO", "PRO_MAX"])
@pytest.mark.parametrize("scopes", [set(SCOPES), set(), {"mailbox:read", "email:read"}, {"email:read", "email:write"},
                                    {"webhook:manage"}, {"domain:read", "domain:write", "mailbox:write"}])
def test_shown_exactly_what_the_gates_allow(owner, plan_code, scopes):
    owner.plan = Plan.objects.get(code=plan_code)
    actor = gates.Actor(account=owner, user=None, token=None, scopes=frozenset(scopes))
    shown = [operation.name for operation in gates.visible_operations(actor)]
    assert shown == [name for name, operation in registry().items() if _passes_gates(actor, operation)]
