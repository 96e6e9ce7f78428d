from webhooks.models import Event


def event_list(*, account, after=0, mailbox=None, types=None, limit=100):
    """Events of one account after a cursor, oldest first."""
    events = Event.objects.filter(account=account, cursor__gt=after)
    if mailbox is not None:
        events = events.filter(mailbox=mailbox)
    if types:
        events = events.filter(type__in=types)
    return list(events.order_by("cursor")[:limit])
