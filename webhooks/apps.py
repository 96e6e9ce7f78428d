from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Events and webhooks"

    def ready(self):
        from webhooks.delivery import deliveries_create, on_deliveries_due
        from webhooks.services import on_event_written, subscribe_to_events
        from webhooks.stream import announce
        from webhooks.tasks import enqueue_on_commit

        # Each event makes its webhook deliveries in its own transaction; they are enqueued on commit.
        on_event_written(deliveries_create)
        on_deliveries_due(enqueue_on_commit)

        # Waiters (long-polls, MCP subscriptions, live pages) hear each committed event.
        subscribe_to_events(announce)
