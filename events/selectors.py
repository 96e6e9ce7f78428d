"""Reading the event log: batches after a cursor, a mailbox's latest events, which mailboxes moved."""

from dataclasses import dataclass, field

from accounts.models import Account
from core.errors import Invalid
from core.tenancy import within_mailboxes
from events.models import Event

MAX_EVENTS = 100


@dataclass
class EventBatch:
    after: int  # the cursor the batch was read after
    next_cursor: int  # read on from here: every event up to it has been seen (or did not match the filters)
    events: list = field(default_factory=list)


def event_latest_cursor(*, account_id) -> int:
    """The cursor of the account's newest committed event (0 when it has none)."""
    return Account.objects.filter(pk=account_id).values_list("event_cursor", flat=True).first() or 0


def event_batch(*, account_id, after=None, mailbox_id=None, types=None, limit=MAX_EVENTS,
                mailbox_ids=None) -> EventBatch:
    """The account's events after `after` (from now when None), oldest first, at most `limit`; for a token limited
    to some mailboxes (`mailbox_ids`), only theirs (an event of no mailbox, such as a domain's, is the account's).

    Cursors are handed out under a lock on the account row and commit in order, so every event up
    to the account's committed cursor is visible: reading that first and the events up to it never
    skips one that commits later with a smaller number.
    """
    latest = event_latest_cursor(account_id=account_id)
    if after is None:
        return EventBatch(after=latest, next_cursor=latest)
    if after > latest:
        raise Invalid("This cursor is ahead of the event log. Pass next_cursor from an earlier answer, or omit "
                      "cursor to start from now.", field="cursor")
    events = within_mailboxes(Event.objects.filter(account_id=account_id, cursor__gt=after, cursor__lte=latest),
                              mailbox_ids)
    if mailbox_id is not None:
        events = events.filter(mailbox_id=mailbox_id)
    if types:
        events = events.filter(type__in=list(types))
    found = list(events.order_by("cursor")[:limit])
    next_cursor = found[-1].cursor if len(found) == limit else latest
    return EventBatch(after=after, next_cursor=next_cursor, events=found)


def event_latest(*, account_id, mailbox_id, limit=MAX_EVENTS // 2) -> EventBatch:
    """The newest `limit` events of one mailbox (oldest first), as a batch: every event of that mailbox after
    `after` up to `next_cursor` (the account's committed cursor) is in it, so a reader can go on from there."""
    latest = event_latest_cursor(account_id=account_id)
    found = list(Event.objects.filter(account_id=account_id, mailbox_id=mailbox_id, cursor__lte=latest)
                 .order_by("-cursor")[:limit])[::-1]
    return EventBatch(after=found[0].cursor - 1 if found else latest, next_cursor=latest, events=found)


def event_mailboxes_between(*, account_id, after, upto, skip=()) -> set:
    """The ids (str) of the mailboxes that have events with a cursor in (after, upto], leaving out cursors in `skip`."""
    events = Event.objects.filter(account_id=account_id, cursor__gt=after, cursor__lte=upto, mailbox_id__isnull=False)
    if skip:
        events = events.exclude(cursor__in=list(skip))
    return {str(mailbox_id) for mailbox_id in events.order_by().values_list("mailbox_id", flat=True).distinct()}
