from django.apps import AppConfig


class QMailingConfig(AppConfig):
    name = "qmailing"
    verbose_name = "QMailing"

    def ready(self):
        from django.conf import settings

        from qmailing.local_folders import make_local_folders

        # The SQLite file's folder, the filesystem broker's and static files exist before first use.
        make_local_folders(settings)
