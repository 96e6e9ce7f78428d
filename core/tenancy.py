"""The restriction every agent-facing read shares beyond the account: a token may be limited to some mailboxes.

`mailbox_ids` is the Actor's (agent.gates): None for a token that reaches every mailbox of its account, else
the set it is limited to, possibly empty (its mailboxes were deleted: it then reaches nothing). Selectors
restrict to the account first, then pass their queryset through `within_mailboxes`.
"""


def within_mailboxes(queryset, mailbox_ids, *, field="mailbox_id"):
    """`queryset` restricted to rows whose `field` is one of `mailbox_ids` (unchanged when it is None)."""
    if mailbox_ids is None:
        return queryset
    return queryset.filter(**{f"{field}__in": list(mailbox_ids)})
