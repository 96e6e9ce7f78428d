"""The dashboard's overview and the plan page: pages that gather from every app."""

from django.conf import settings
from django.shortcuts import render

from accounts.selectors import plan_limits
from accounts.web import account_view
from agent.plans import plan_catalogue
from domains.selectors import domain_list
from mailboxes.outbound.ledger import sends_in_window
from mailboxes.selectors import group_list, mailbox_list


@account_view
def dashboard(request, account):
    domains, mailboxes = list(domain_list(account=account)), list(mailbox_list(account=account))
    context = {
        "account": account,
        "plan": account.plan,
        "domains": domains,
        "mailboxes": mailboxes,
        "groups": group_list(account=account),
        "limits": plan_limits(account=account, domains=len(domains),
                              mailboxes=len(mailboxes), sends=sends_in_window(account=account)),
    }
    return render(request, "dashboard.html", context)


@account_view
def plan_view(request, account):
    plans, groups = plan_catalogue()
    return render(request, "accounts/plan.html", {"account": account, "plans": plans, "groups": groups,
                                                  "contact_address": settings.QMAILING_PLAN_CONTACT_EMAIL})
