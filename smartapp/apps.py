from django.apps import AppConfig


class SmartappConfig(AppConfig):
    name = "smartapp"
    verbose_name = "SMART launch"

    def ready(self) -> None:
        # Connect the Ehr signal handlers that invalidate the cached frame-ancestors origins in
        # every process (management commands too), not only in processes that load the middleware.
        # Importing checks registers the project's `check --deploy` checks.
        from smartapp import checks, security  # noqa: F401
