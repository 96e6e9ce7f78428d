from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Event log"

    def ready(self):
        from events.signals import event_committed
        from events.stream import announce

        # Waiters (long-polls, MCP subscriptions, live pages) hear each committed event.
        event_committed.connect(announce, dispatch_uid="events.stream.announce")
