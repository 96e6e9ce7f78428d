from django.db import migrations

GB = 1024 ** 3

# Defaults as docs/user-guide/accounts.md lists them; editable in the admin afterwards.
PLANS = [
    {"code": "FREE", "name": "Free", "rank": 0, "tool_groups": ["mailboxes"], "max_domains": 1, "max_mailboxes": 3,
     "storage_bytes": 1 * GB, "sends_per_day": 50, "daily_request_cap": 25},
    {"code": "PLUS", "name": "Plus", "rank": 10, "tool_groups": ["mailboxes", "mail"], "max_domains": 3, "max_mailboxes": 25,
     "storage_bytes": 10 * GB, "sends_per_day": 500, "daily_request_cap": None},
    {"code": "PRO", "name": "Pro", "rank": 20, "tool_groups": ["mailboxes", "mail", "webhooks"], "max_domains": 10,
     "max_mailboxes": 100, "storage_bytes": 50 * GB, "sends_per_day": 2000, "daily_request_cap": None},
    {"code": "PRO_MAX", "name": "Pro Max", "rank": 30, "tool_groups": ["mailboxes", "mail", "webhooks"], "max_domains": 50,
     "max_mailboxes": 1000, "storage_bytes": 250 * GB, "sends_per_day": 10000, "daily_request_cap": None},
]


def seed(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for row in PLANS:
        Plan.objects.update_or_create(code=row["code"], defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("accounts", "Plan").objects.filter(code__in=[p["code"] for p in PLANS], accounts__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
