"""Email.recipients_text, what the search `to` filter matches, filled for the mail already stored."""

import unicodedata

from django.db import migrations, models

BATCH = 1000


def _fold(text):
    # Frozen copy of mailboxes.store.search.search_fold as it was when this migration was written.
    return unicodedata.normalize("NFKC", " ".join(str(text or "").split()).casefold())


def _recipients_text(*address_lists):
    values = (entry.get(key) for entries in address_lists for entry in entries or () if isinstance(entry, dict)
              for key in ("name", "address"))
    return "\n".join(filter(None, (_fold(value) for value in values)))


def backfill(apps, schema_editor):
    Email = apps.get_model("mailboxes", "Email")
    last = None
    while True:
        # Keyset batches by primary key: never a cursor left open over the table being updated.
        rows = Email.objects.order_by("pk").only("pk", "to", "cc")
        rows = list((rows.filter(pk__gt=last) if last else rows)[:BATCH])
        if not rows:
            return
        for email in rows:
            email.recipients_text = _recipients_text(email.to, email.cc)
        Email.objects.bulk_update(rows, ["recipients_text"])
        last = rows[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("mailboxes", "0006_forward_delivery"),
    ]

    operations = [
        migrations.AddField(
            model_name="email",
            name="recipients_text",
            field=models.TextField(blank=True, editable=False,
                                   help_text="To and Cc names and addresses, casefolded, one per line."),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
