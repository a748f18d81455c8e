"""Create a private JWKS (RS384 + ES384) for private_key_jwt; point SMART_JWKS_FILE at it."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from smartapp.keys import generate_private_jwks, write_private_jwks


class Command(BaseCommand):
    help = "Write a new private JWKS (one RS384 and one ES384 key) to PATH with mode 0600."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--force", action="store_true", help="Overwrite an existing file")

    def handle(self, *args, **opts):
        path = Path(opts["path"])
        if path.exists() and not opts["force"]:
            raise CommandError(f"{path} exists; use --force to replace it (old keys stop working)")
        jwks = generate_private_jwks()
        write_private_jwks(path, jwks)
        kids = ", ".join(f"{k['alg']} kid={k['kid']}" for k in jwks["keys"])
        self.stdout.write(f"wrote {path} ({kids}); set SMART_JWKS_FILE={path}")
