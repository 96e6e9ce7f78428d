from accounts.models import Plan
from qmailing.errors import Invalid


def plan_get(*, code):
    try:
        return Plan.objects.get(code=(code or "").strip().upper())
    except Plan.DoesNotExist:
        codes = ", ".join(Plan.objects.values_list("code", flat=True))
        raise Invalid(f"There is no plan {code!r}; choose one of {codes}.", field="plan")


def plan_list():
    return list(Plan.objects.order_by("rank"))


def plan_lowest_with_group(*, group):
    """The cheapest plan that unlocks a tool group (for 402 requiredPlan)."""
    for plan in plan_list():
        if plan.allows_group(group):
            return plan
    return None
