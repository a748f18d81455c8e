"""`python manage.py runsandbox [ADDR:PORT]`: migrate, seed if empty, serve the sandbox EHR (threaded)."""

from __future__ import annotations

import json
import socketserver
import sys
import time
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

from sandbox.management.reexec import ensure_sandbox_process, prepare_database


class Command(BaseCommand):
    help = "Serve the sandbox EHR (dev/test only): SMART authorization server, FHIR API, simulated EHR."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:9000", help="ADDR:PORT (default 127.0.0.1:9000)"
        )
        parser.add_argument("--db", help="SQLite file of the sandbox (default var/sandbox.sqlite3)")
        parser.add_argument("--clients", help="JSON file: a list of clients to register before serving")
        parser.add_argument("--seed", type=int, help="data seed (default SANDBOX_SEED or 20250115)")
        parser.add_argument(
            "--anchor",
            type=date.fromisoformat,
            help="the data's today, YYYY-MM-DD (default: today, UTC); used only when seeding",
        )
        parser.add_argument(
            "--population",
            type=int,
            default=0,
            help="also generate N small patients in Group/pop for bulk-export scale tests (on demand only)",
        )
        parser.add_argument("--no-serve", action="store_true", help="migrate, seed and register, then exit")

    def handle(self, *args, **options):
        ensure_sandbox_process("runsandbox", options["db"])
        from django.conf import settings

        addr, _, port = options["addrport"].rpartition(":")
        addr = addr.strip("[]") or "127.0.0.1"
        if not port.isdigit():
            raise CommandError(f"expected ADDR:PORT, got {options['addrport']!r}")
        started = time.monotonic()
        prepare_database()
        from sandbox import registry, seed

        if not seed.is_seeded():
            count = seed.seed(options["seed"] or settings.SANDBOX_SEED, options["anchor"])
            self.stdout.write(f"Seeded {count} FHIR resources.")
        if options["population"]:
            from sandbox import bulk

            count = bulk.ensure_population(options["population"], options["seed"] or settings.SANDBOX_SEED)
            self.stdout.write(f"Generated population: {count} patients in Group/pop.")
        if options["clients"]:
            for data in json.loads(Path(options["clients"]).read_text()):
                try:
                    registry.from_dict(data)
                except registry.RegistrationError as e:
                    raise CommandError(str(e)) from e
        if options["no_serve"]:
            return
        if not settings.SANDBOX_BASE_URL and addr not in ("0.0.0.0", "::"):  # noqa: S104
            host = f"[{addr}]" if ":" in addr else addr
            settings.SANDBOX_BASE_URL = f"http://{host}:{port}"
        base = settings.SANDBOX_BASE_URL or f"http://{addr}:{port}"
        self.stdout.write(
            f"Sandbox EHR ready in {time.monotonic() - started:.1f}s (dev/test only)\n"
            f"  FHIR base:     {base}/fhir\n"
            f"  Simulated EHR: {base}/ehr/   (dr.smith / demo)\n"
            f"  Admin:         {base}/admin/ (admin / demo)"
        )
        self.stdout.flush()
        serve(addr, int(port))


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """Django's WSGI server with a thread per request and a deeper accept queue."""

    daemon_threads = True
    request_queue_size = 256


class QuietHandler(WSGIRequestHandler):
    # The handler writes headers and body in separate sends; with Nagle on, a keep-alive
    # client's delayed ACK stalled every small response by ~40 ms (real EHRs set NODELAY).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass  # request lines carry patient ids; keep them out of the logs


def serve(addr: str, port: int) -> None:
    """Serve the sandbox until interrupted."""
    from django.core.wsgi import get_wsgi_application

    server = ThreadingServer((addr, port), QuietHandler, ipv6=":" in addr)
    server.set_app(get_wsgi_application())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stdout.write("Sandbox EHR stopped.\n")
    finally:
        server.server_close()
