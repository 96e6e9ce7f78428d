"""What webhook delivery tells the task layer, so that webhooks.delivery never imports webhooks.tasks."""

from django.dispatch import Signal

# Deliveries are due now, sent inside the transaction that made them so, with ids=[str(delivery id), …];
# webhooks.tasks enqueues them once that transaction commits. A receiver's error propagates.
deliveries_ready = Signal()
