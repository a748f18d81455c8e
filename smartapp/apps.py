from django.apps import AppConfig


class SmartappConfig(AppConfig):
    name = "smartapp"
    verbose_name = "SMART launch"
