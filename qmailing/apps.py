from django.apps import AppConfig


class QMailingConfig(AppConfig):
    name = "qmailing"
    verbose_name = "QMailing"

    def ready(self):
        from qmailing.operations import collect

        # Each app's operations.py registers its agent-facing operations (REST now, MCP next).
        collect()
