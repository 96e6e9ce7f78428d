from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        from events.signals import event_written
        from webhooks.delivery import deliveries_create
        from webhooks.signals import deliveries_ready
        from webhooks.tasks import enqueue_on_commit

        # Each event makes its webhook deliveries in its own transaction; they are enqueued on commit.
        event_written.connect(deliveries_create, dispatch_uid="webhooks.delivery.deliveries_create")
        deliveries_ready.connect(enqueue_on_commit, dispatch_uid="webhooks.tasks.enqueue_on_commit")
