from accounts.models import Plan
from core.errors import Invalid


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


def plan_limits(*, account, domains, mailboxes, sends):
    """The overview's meters: each plan limit with what is used of it ({label, used_text, limit_text, percent, note})."""
    from django.template.defaultfilters import filesizeformat

    plan = account.plan
    storage = account.storage_used()

    def meter(label, used, limit, used_text=None, limit_text=None, note=""):
        percent = min(100, round(100 * used / limit)) if limit else 0
        return {"label": label, "used_text": used_text or f"{used:,}", "limit_text": limit_text or f"{limit:,}",
                "percent": percent, "note": note}

    return [meter("Sends today", sends, plan.sends_per_day, note="Each recipient counts; the last 24 hours, rolling."),
            meter("Storage", storage, plan.storage_bytes, filesizeformat(storage), filesizeformat(plan.storage_bytes)),
            meter("Mailboxes", mailboxes, plan.max_mailboxes),
            meter("Custom domains", domains, plan.max_domains)]
