from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Events and webhooks"

    def ready(self):
        from webhooks.services import subscribe_to_events
        from webhooks.stream import announce

        # Waiters (long-polls, MCP subscriptions, live pages) hear each committed event.
        subscribe_to_events(announce)
