from django.apps import AppConfig


class QMailingConfig(AppConfig):
    name = "qmailing"
    verbose_name = "QMailing"
