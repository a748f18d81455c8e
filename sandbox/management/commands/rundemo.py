"""`python manage.py rundemo`: the app beside the sandbox EHR, registered with each other (dev only).

What `make run` calls. It migrates the app's database, registers the sandbox as an EHR in the
app and the app as a client of the sandbox (with a fresh client secret, or private_key_jwt
against the app's JWKS URL), creates the demo app admin (`admin` / `demo`) if there is none,
starts both servers on different sites (EHR on 127.0.0.1, app on localhost, so the EHR's iframe
is cross-site as in real EHRs) and prints where to go. Ctrl-C, SIGTERM and SIGHUP stop both.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from smartapp.models import DEFAULT_EHR_LAUNCH_SCOPE, DEFAULT_STANDALONE_SCOPE, Ehr

DEMO_CLIENT_ID = "smart-dashboard-demo"
# The app's demo admin, documented in the README; created only by this DEBUG-only command.
DEMO_ADMIN = ("admin", "demo")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(Exception):
    """A stop signal arrived (Ctrl-C, SIGTERM from `kill` or a supervisor, SIGHUP from a closed terminal)."""


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def _port_in_use(port: int) -> bool:
    """True when something already listens on loopback `port` (either server binds 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _resource(scope: str) -> str:
    """The resource type of `patient/Observation.rs` (and of v1 and user/ forms); "" otherwise."""
    level, _, rest = scope.partition("/")
    return rest.split(".", 1)[0] if level in ("patient", "user") and "." in rest else ""


# Resource types added to the default scopes since the first release: a demo database from
# before gets their scope, so its dashboard is the current one.
ADDED_RESOURCES = frozenset({"DiagnosticReport"})


def _add_new_default_scopes(ehr: Ehr) -> None:
    """Add the default scopes of ADDED_RESOURCES that a demo registration does not mention;
    everything else, edited by hand or not, is kept."""
    changed = []
    for field, default in (
        ("ehr_launch_scope", DEFAULT_EHR_LAUNCH_SCOPE),
        ("standalone_scope", DEFAULT_STANDALONE_SCOPE),
    ):
        have = getattr(ehr, field).split()
        mentioned = {_resource(scope) for scope in have}
        new = [s for s in default.split() if _resource(s) in ADDED_RESOURCES - mentioned]
        if new:
            setattr(ehr, field, " ".join(have + new))
            changed.append(field)
    if changed:
        ehr.save(update_fields=changed)


def _shell_python() -> str:
    """This interpreter as a user would type it from the project directory (.venv/bin/python)."""
    relative = os.path.relpath(sys.executable, settings.BASE_DIR)
    return sys.executable if relative.startswith("..") else relative


class Command(BaseCommand):
    help = "Run the app beside the sandbox EHR, registered with each other (DEBUG only)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--app-port", type=int, default=8000)
        parser.add_argument("--ehr-port", type=int, default=9000)
        parser.add_argument(
            "--auth-method",
            choices=[Ehr.AuthMethod.CLIENT_SECRET_BASIC, Ehr.AuthMethod.PRIVATE_KEY_JWT],
            default=Ehr.AuthMethod.CLIENT_SECRET_BASIC,
            help="How the app authenticates to the sandbox's token endpoint.",
        )

    def handle(self, *args, **opts):
        if not settings.DEBUG:
            raise CommandError("rundemo is a development command: run it with DEBUG=True.")
        busy = [
            f"{what} port {opts[key]} (--{key.replace('_', '-')})"
            for what, key in (("the EHR", "ehr_port"), ("the app", "app_port"))
            if _port_in_use(opts[key])
        ]
        if busy:
            raise CommandError(
                f"{' and '.join(busy)} already in use: is another demo still running? Stop it, "
                "or pick free ports with --ehr-port and --app-port."
            )
        app_url = f"http://localhost:{opts['app_port']}"
        ehr_url = f"http://127.0.0.1:{opts['ehr_port']}"
        fhir_base = f"{ehr_url}/fhir"
        asymmetric = opts["auth_method"] == Ehr.AuthMethod.PRIVATE_KEY_JWT
        secret = "" if asymmetric else secrets.token_urlsafe(32)

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
        admin_note = self._ensure_demo_admin()
        register = {
            "name": "Sandbox EHR",
            "iss": fhir_base,
            "client_id": DEMO_CLIENT_ID,
            "auth_method": opts["auth_method"],
            "frame_ancestor": [ehr_url],
            "slug": "sandbox",
        }
        if secret:
            register["client_secret"] = secret
        call_command("register_ehr", stdout=open(os.devnull, "w"), **register)  # noqa: SIM115
        _add_new_default_scopes(Ehr.objects.get(slug=register["slug"]))

        client = {
            "client_id": DEMO_CLIENT_ID,
            "name": "SMART Dashboard",  # the chart's tab label, as the README names it
            "redirect_uris": [f"{app_url}/callback"],
            "launch_url": f"{app_url}/launch",
        }
        client.update(
            {"jwks_url": f"{app_url}/.well-known/jwks.json"} if asymmetric else {"client_secret": secret}
        )
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as clients_file:
            json.dump([client], clients_file)

        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        env = {**os.environ, "DEBUG": "True", "SMART_APP_BASE_URL": app_url}
        commands = [
            [*manage, "runsandbox", f"127.0.0.1:{opts['ehr_port']}", "--clients", clients_file.name],
            [*manage, "runserver", f"localhost:{opts['app_port']}", "--noreload"],
        ]
        # Until the servers are stopped in `finally`, every stop signal ends the wait below the
        # same way: SIGINT too, which a shell ignores in background jobs (and their children).
        previous = {signum: signal.signal(signum, _raise_stop) for signum in STOP_SIGNALS}
        processes: list[subprocess.Popen] = []
        try:
            for command in commands:
                # Fixed argument lists of our own manage.py, no shell: nothing untrusted reaches them.
                processes.append(subprocess.Popen(command, env=env))  # noqa: S603
            self._wait_ready(f"{ehr_url}/_sandbox/health", processes)
            self._wait_ready(f"{app_url}/healthz", processes)
            Path(clients_file.name).unlink(missing_ok=True)
            self.stdout.write(
                self.style.SUCCESS("\nThe SMART dashboard demo is running.\n")
                + f"  EHR launch:        open {ehr_url}/ehr/  (log in as dr.smith / demo), open a chart,\n"
                "                     then the 'SMART Dashboard' tab.\n"
                f"  Standalone launch: open {app_url}/  and pick 'Sandbox EHR'.\n"
                f"  App admin:         {app_url}/admin/  {admin_note}\n"
                f"  Sandbox admin:     {ehr_url}/admin/  (admin / demo)\n"
                "Press Ctrl-C to stop both servers."
            )
            self.stdout.flush()
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            raise CommandError("a server stopped unexpectedly; see its output above")
        except (_Stop, KeyboardInterrupt) as stop:
            self.stdout.write(f"\nStopping both servers ({stop or 'SIGINT'}).")
        finally:
            # A second signal while stopping must not cut the cleanup short.
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            Path(clients_file.name).unlink(missing_ok=True)
            # SIGTERM, not SIGINT: a server started from a background job ignores SIGINT.
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _ensure_demo_admin(self) -> str:
        """Create the demo app admin if no such user exists; say how to sign in."""
        username, password = DEMO_ADMIN
        python = _shell_python()
        users = get_user_model().objects
        if not users.filter(username=username).exists():
            users.create_superuser(username=username, password=password, email="")
            return f"(log in as {username} / {password}; demo only)"
        return (
            f"(user {username!r} exists and was left as it is; another admin: "
            f"DEBUG=True {python} manage.py createsuperuser)"
        )

    @staticmethod
    def _wait_ready(url: str, processes: list[subprocess.Popen], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise CommandError("a server failed to start; see its output above")
            try:
                requests.get(url, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise CommandError(f"{url} did not answer within {timeout:.0f} s")
