# The event log moved here from the webhooks app. Its table (webhooks_event) and rows stay where they are:
# this migration only tells Django's state that the model now lives in this app; webhooks 0001 created the
# table (on a new database it runs first, through the dependency below) and webhooks 0004 forgets it.

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


def _content_type_follows(apps, schema_editor):
    """Admin permissions and log entries of the event log keep pointing at it under its new app label."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="events", model="event").exists():
        ContentType.objects.filter(app_label="webhooks", model="event").update(app_label="events")


def _content_type_returns(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="webhooks", model="event").exists():
        ContentType.objects.filter(app_label="events", model="event").update(app_label="webhooks")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('mailboxes', '0001_initial'),
        ('webhooks', '0003_webhook_endpoints_and_deliveries'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Event',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('cursor', models.BigIntegerField()),
                        ('type', models.CharField(choices=[('email.received', 'Email Received'), ('email.sent', 'Email Sent'), ('email.delivered', 'Email Delivered'), ('email.bounced', 'Email Bounced'), ('email.failed', 'Email Failed'), ('email.trashed', 'Email Trashed'), ('mailbox.created', 'Mailbox Created'), ('mailbox.deleted', 'Mailbox Deleted'), ('domain.added', 'Domain Added'), ('domain.verified', 'Domain Verified'), ('domain.dns_changed', 'Domain Dns Changed'), ('webhook.disabled', 'Webhook Disabled')], max_length=40)),
                        ('payload', models.JSONField(default=dict)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='accounts.account')),
                        ('mailbox', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='mailboxes.mailbox')),
                    ],
                    options={
                        'db_table': 'webhooks_event',
                        'ordering': ['account', 'cursor'],
                        'indexes': [models.Index(fields=['mailbox', 'cursor'], name='event_mailbox_cursor')],
                        'constraints': [models.UniqueConstraint(fields=('account', 'cursor'), name='event_cursor_unique_per_account')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_content_type_follows, _content_type_returns),
    ]
