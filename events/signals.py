"""What the event log tells its consumers (webhooks, waiters), so that it imports none of them.

Both signals are sent with sender=Event and event=the Event just written.
"""

from django.dispatch import Signal

# Inside the transaction that writes the event, so what a receiver writes commits or rolls back with it (webhooks
# makes its deliveries here). Sent with send(): a receiver's error propagates and rolls the change back.
event_written = Signal()

# After the event's transaction committed (long-polls, MCP subscriptions, live pages wake up). Sent with
# send_robust(): one failing consumer is logged and does not keep the event from the others.
event_committed = Signal()
