"""The restriction every agent-facing read shares beyond the account: a token may be limited to some mailboxes.

`mailbox_ids` is the Actor's (agent.gates): None for a token that reaches every mailbox of its account, else
the set it is limited to, possibly empty (its mailboxes were deleted: it then reaches nothing). Selectors
restrict to the account first, then pass their queryset through `within_mailboxes`.
"""

from django.db.models import Value
from django.db.models.lookups import Exact


def within_mailboxes(queryset, mailbox_ids, *, field="mailbox_id"):
    """`queryset` restricted to rows whose `field` is one of `mailbox_ids` (unchanged when it is None)."""
    if mailbox_ids is None:
        return queryset
    if not mailbox_ids:
        # `field__in=[]` matches nothing but cannot be compiled to SQL (EmptyResultSet), which the search's raw
        # SQL needs; 1 = 0 says the same and compiles.
        return queryset.filter(Exact(Value(1), Value(0)))
    return queryset.filter(**{f"{field}__in": list(mailbox_ids)})
