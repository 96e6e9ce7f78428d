"""Attachment names join the search entry: rewrite the entries of the mail already stored with attachments.

New mail gets the names from ingest (mailboxes.store.search.index.search_document); this fills them in for
mail stored before. Only emails with attachments change, in keyset batches by primary key.
"""

import re
from itertools import islice

from django.db import migrations

BATCH = 500
# Frozen copy of mailboxes.store.search.index as it was when this migration was written.
MAX_INDEXED_CHARS = 100_000
MAX_INDEXED_ATTACHMENT_NAMES = 50
MAX_INDEXED_NAME_CHARS = 255
_NAME_WORD = re.compile(r"[^\W_]+")


def _names_text(filenames):
    # Stored names are already the parser's display form (safe_filename), so they are not cleaned again.
    parts = []
    for filename in islice(filenames, MAX_INDEXED_ATTACHMENT_NAMES):
        name = (filename or "")[:MAX_INDEXED_NAME_CHARS].strip()
        if not name:
            continue
        stem, dot, _ = name.rpartition(".")
        parts += [name, stem] if dot and stem else [name]
        parts.append(" ".join(_NAME_WORD.findall(name)))
    return "\n".join(parts)


def _document(email, attachments):
    address = email.from_address or ""
    sender = " ".join([email.from_name or "", address, address.replace("@", " ").replace(".", " ")])
    texts = [_names_text(a.filename for a in attachments), *(a.extracted_text or "" for a in attachments)]
    return {
        "subject": (email.subject or "")[:MAX_INDEXED_CHARS],
        "sender": sender[:MAX_INDEXED_CHARS],
        "body": (email.text or "")[:MAX_INDEXED_CHARS],
        "attachments": " ".join(filter(None, texts))[:MAX_INDEXED_CHARS],
    }


def _write_postgres(connection, email_id, document):
    from django.conf import settings

    config = settings.QMAILING_SEARCH_CONFIG
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mailboxes_email SET search_vector ="
            " setweight(to_tsvector(%s::regconfig, %s), 'A') || setweight(to_tsvector(%s::regconfig, %s), 'B')"
            " || setweight(to_tsvector(%s::regconfig, %s), 'C') || setweight(to_tsvector(%s::regconfig, %s), 'D')"
            " WHERE id = %s",
            [config, document["subject"], config, document["sender"], config, document["body"], config,
             document["attachments"], email_id],
        )


def _write_sqlite(connection, email_id, document):
    with connection.cursor() as cursor:
        key = email_id.hex
        cursor.execute("INSERT OR IGNORE INTO mailboxes_email_fts_map (email_id) VALUES (%s)", [key])
        cursor.execute("SELECT rowid FROM mailboxes_email_fts_map WHERE email_id = %s", [key])
        rowid = cursor.fetchone()[0]
        cursor.execute("DELETE FROM mailboxes_email_fts WHERE rowid = %s", [rowid])
        cursor.execute(
            "INSERT INTO mailboxes_email_fts (rowid, subject, sender, body, attachments) VALUES (%s, %s, %s, %s, %s)",
            [rowid, document["subject"], document["sender"], document["body"], document["attachments"]],
        )


def reindex_with_attachment_names(apps, schema_editor):
    connection = schema_editor.connection
    write = {"postgresql": _write_postgres, "sqlite": _write_sqlite}.get(connection.vendor)
    if write is None:
        return
    Email, Attachment = apps.get_model("mailboxes", "Email"), apps.get_model("mailboxes", "Attachment")
    emails = (Email.objects.filter(has_attachments=True).order_by("pk")
              .only("pk", "subject", "from_name", "from_address", "text"))
    last = None
    while True:
        rows = list((emails.filter(pk__gt=last) if last else emails)[:BATCH])
        if not rows:
            return
        attachments = {}
        for attachment in (Attachment.objects.filter(email_id__in=[row.pk for row in rows])
                           .order_by("email_id", "position").only("email", "filename", "extracted_text")):
            attachments.setdefault(attachment.email_id, []).append(attachment)
        for email in rows:
            write(connection, email.pk, _document(email, attachments.get(email.pk, [])))
        last = rows[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("mailboxes", "0010_drafts"),
    ]

    operations = [
        migrations.RunPython(reindex_with_attachment_names, migrations.RunPython.noop, elidable=True),
    ]
