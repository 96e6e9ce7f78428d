"""Which agent tools each plan unlocks: the plan page's table, from the Plan rows and the operation registry."""

from accounts.models import TOOL_GROUPS
from accounts.selectors import plan_list
from agent.operations import registry

GROUP_TITLES = {"mailboxes": "Read your mailboxes", "mail": "Mail, domains and drafts", "webhooks": "Webhooks"}


def plan_catalogue():
    """Every plan with its limits and the agent tools it unlocks, generated from the Plan rows and the
    operation registry (the same sources as /docs/mcp), so the plan page cannot drift from what is served.

    Returns (plans, groups): `plans` is a list of dicts {plan, groups, new_groups} in rank order, where
    `new_groups` are the tool groups this plan adds over the one below it; `groups` is a list of dicts
    {code, title, tools (titles), plans (one bool per plan)}.
    """
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
