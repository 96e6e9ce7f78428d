"""The folders the embedded default writes to, made when Django starts instead of when the settings are read.

Importing the settings writes nothing (docs/development/decisions/0008-settings-without-side-effects.md);
every process that uses these folders starts Django first (manage.py, daphne through qmailing.asgi, Celery
through its Django fix-up), so QMailingConfig.ready() makes them before the first connection or enqueue.
Folders that their own writers make (media: the storage backend; the outbox: the file email backend) are
left to them.
"""

from pathlib import Path


def local_folders(settings):
    """The folders the settings name that must exist before anything opens them."""
    folders = [Path(settings.STATIC_ROOT), Path(settings.CELERY_BEAT_SCHEDULE_FILENAME).parent]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        for name in (database["NAME"], database.get("TEST", {}).get("NAME")):
            if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                folders.append(Path(name).parent)
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [Path(options[key]) for key in ("data_folder_in", "data_folder_out", "processed_folder",
                                                   "control_folder")]
    return folders


def make_local_folders(settings):
    for folder in local_folders(settings):
        folder.mkdir(parents=True, exist_ok=True)
