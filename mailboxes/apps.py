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

        from mailboxes.signals import attachments_pending, email_received, external_recipients
        from mailboxes.tasks import deliver_on_commit, extract_on_commit, forward_on_commit

        # Received mail is forwarded, attachment text extracted and sent mail delivered through these signals,
        # so ingest and send never import the tasks (which import forwarding, which stores through ingest).
        email_received.connect(forward_on_commit, dispatch_uid="mailboxes.tasks.forward_on_commit")
        attachments_pending.connect(extract_on_commit, dispatch_uid="mailboxes.tasks.extract_on_commit")
        external_recipients.connect(deliver_on_commit, dispatch_uid="mailboxes.tasks.deliver_on_commit")
