from django.apps import AppConfig


class SmartappConfig(AppConfig):
    name = "smartapp"
    verbose_name = "SMART launch"

    def ready(self) -> None:
        # Connect the Ehr signal handlers that invalidate the cached frame-ancestors origins in
        # every process (management commands too), not only in processes that load the middleware.
        from smartapp import security  # noqa: F401
