from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes and mail"

    def ready(self):
        from anymail.signals import inbound, tracking

        from mailboxes.delivery import on_tracking

        # ESP tracking webhooks (delivered / bounced / failed) move sent mail's delivery status.
        tracking.connect(on_tracking, dispatch_uid="mailboxes.delivery.on_tracking")

        from mailboxes.esp_inbound import on_inbound

        # ESP inbound webhooks (Mailgun routes) deliver through the same path as the SMTP server.
        inbound.connect(on_inbound, dispatch_uid="mailboxes.esp_inbound.on_inbound")
