"""`python manage.py sandbox_register_client ...`: register (or update) an app with the sandbox EHR."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sandbox.management.reexec import ensure_sandbox_process, prepare_database


class Command(BaseCommand):
    help = "Register a SMART client with the sandbox EHR (idempotent; dev/test only)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        auth = parser.add_mutually_exclusive_group(required=True)
        auth.add_argument("--client-secret", help="client_secret_basic / client_secret_post")
        auth.add_argument("--jwks-url", help="private_key_jwt: the app's JWKS URL")
        parser.add_argument("--redirect-uri", action="append", required=True, help="repeat for several")
        parser.add_argument("--launch-url", required=True)
        parser.add_argument("--scope", default="", help="allowed scopes (default: anything supported)")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--no-refresh-rotation", action="store_true", help="keep refresh tokens on refresh"
        )
        parser.add_argument("--consent-on-ehr-launch", action="store_true")
        parser.add_argument("--db", help="SQLite file of the sandbox (default var/sandbox.sqlite3)")

    def handle(self, *args, **options):
        ensure_sandbox_process("sandbox_register_client", options["db"])
        prepare_database()
        from sandbox import registry

        try:
            client, created = registry.register_client(
                client_id=options["client_id"],
                redirect_uris=options["redirect_uri"],
                launch_url=options["launch_url"],
                client_secret=options["client_secret"] or "",
                jwks_url=options["jwks_url"] or "",
                scope=options["scope"],
                name=options["name"],
                rotate_refresh_tokens=not options["no_refresh_rotation"],
                consent_on_ehr_launch=options["consent_on_ehr_launch"],
            )
        except registry.RegistrationError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"{'Registered' if created else 'Updated'} sandbox client {client.client_id}.")
