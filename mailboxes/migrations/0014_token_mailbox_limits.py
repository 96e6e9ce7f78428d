import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from oauth2_provider.settings import oauth2_settings


class Migration(migrations.Migration):

    dependencies = [
        ('mailboxes', '0013_durable_followup'),
        ('oauth2_provider', '0022_refreshtoken_token_family_index'),
        migrations.swappable_dependency(oauth2_settings.ACCESS_TOKEN_MODEL),
        migrations.swappable_dependency(oauth2_settings.GRANT_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='TokenMailboxLimit',
            fields=[
                ('token', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='mailbox_limit', serialize=False, to=oauth2_settings.ACCESS_TOKEN_MODEL)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('mailboxes', models.ManyToManyField(blank=True, related_name='+', to='mailboxes.mailbox')),
            ],
        ),
        migrations.CreateModel(
            name='OAuthMailboxLimit',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('grant', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='mailbox_limit', to=oauth2_settings.GRANT_MODEL)),
                ('token_family', models.UUIDField(blank=True, null=True, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('mailboxes', models.ManyToManyField(blank=True, related_name='+', to='mailboxes.mailbox')),
            ],
        ),
    ]
