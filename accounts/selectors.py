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


GROUP_TITLES = {"mailboxes": "Read your mailboxes", "mail": "Mail, domains and drafts", "webhooks": "Webhooks"}


def plan_catalogue():
    """Every plan with its limits and the agent tools it unlocks, generated from the Plan rows and the
    operation registry (the same sources as /docs/mcp), so the plan page cannot drift from what is served.

    Returns (plans, groups): `plans` is a list of dicts {plan, groups, new_groups} in rank order, where
    `new_groups` are the tool groups this plan adds over the one below it; `groups` is a list of dicts
    {code, title, tools (titles), plans (one bool per plan)}.
    """
    from accounts.models import TOOL_GROUPS
    from qmailing.operations import registry

    plans = plan_list()
    tools_by_group = {group: [] for group in TOOL_GROUPS}
    for operation in registry().values():
        tools_by_group.setdefault(operation.plan_group, []).append(operation.title)
    groups = [{"code": group, "title": GROUP_TITLES.get(group, group.title()), "tools": sorted(titles),
               "plans": [plan.allows_group(group) for plan in plans]} for group, titles in tools_by_group.items()]
    rows, below = [], set()
    for plan in plans:
        unlocked = [group for group in groups if plan.allows_group(group["code"])]
        rows.append({"plan": plan, "groups": unlocked, "new_groups": [g for g in unlocked if g["code"] not in below]})
        below = {group["code"] for group in unlocked}
    return rows, groups


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
