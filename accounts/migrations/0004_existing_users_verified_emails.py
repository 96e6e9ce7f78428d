"""Users from before allauth signed up without a verification step and have been using their address since:
record it as their verified, primary email, so mandatory verification does not lock them out."""

from django.db import migrations


def forwards(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    have = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [EmailAddress(user_id=pk, email=email.lower(), primary=True, verified=True)
         for pk, email in User.objects.values_list("pk", "email").iterator() if pk not in have],
        batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_request_log"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
