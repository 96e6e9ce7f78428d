from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes and mail"

    def ready(self):
        from anymail.signals import inbound, tracking

        from mailboxes import receivers  # noqa: F401  (accounts.signals: first mailbox, suspend, delete)

        from mailboxes.outbound.delivery import on_tracking

        # ESP tracking webhooks (delivered / bounced / failed) move sent mail's delivery status.
        tracking.connect(on_tracking, dispatch_uid="mailboxes.outbound.delivery.on_tracking")

        from mailboxes.inbound.esp import on_inbound

        # ESP inbound webhooks (Mailgun routes) deliver through the same path as the SMTP server.
        inbound.connect(on_inbound, dispatch_uid="mailboxes.inbound.esp.on_inbound")

        from mailboxes.inbound.ingest import on_attachments_pending, on_email_received
        from mailboxes.outbound.send import on_external_recipients
        from mailboxes.tasks import deliver_on_commit, extract_on_commit, forward_on_commit

        # Received mail is forwarded, and attachment text extracted, through these hooks, so ingest
        # never imports the tasks (which import forwarding, which stores through ingest).
        on_email_received(forward_on_commit)
        on_attachments_pending(extract_on_commit)
        on_external_recipients(deliver_on_commit)
