# The event log moved to the events app (events 0001). The table and its rows stay; only Django's state
# changes: the delivery's foreign key now names events.Event (the same table, the same column and
# constraint), and this app forgets the model.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0001_initial'),
        ('webhooks', '0003_webhook_endpoints_and_deliveries'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='webhookdelivery',
                    name='event',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='events.event'),
                ),
                migrations.DeleteModel(name='Event'),
            ],
            database_operations=[],
        ),
    ]
