from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes and mail"

    def ready(self):
        from anymail.signals import tracking

        from mailboxes.delivery import on_tracking

        # ESP tracking webhooks (delivered / bounced / failed) move sent mail's delivery status.
        tracking.connect(on_tracking, dispatch_uid="mailboxes.delivery.on_tracking")
