"""`python -m bench.population [--patients N] [--json PATH]`: the issue 16 population targets.

Starts the sandbox EHR with a generated population (`runsandbox --population N`, Group/pop),
then, in this process (the app's code on a throw-away SQLite database, or DATABASE_URL):

- population_export_s: a full `sync` of Group/pop (token, kick-off, polling, NDJSON streamed,
  summary upserted), wall-clock seconds (target < 60 s for 10,000 patients);
- population_rss_mb: peak RSS growth of this process during that sync (target < 200 MB);
- population_page_ms: median server time of the population page, filters included (target < 300
  ms per page; the target is for PostgreSQL: set DATABASE_URL to measure it there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples this process's RSS every 20 ms; `.growth` is the peak above the start."""

    def __init__(self) -> None:
        self.start = _rss_mb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth(self) -> float:
        return round(self.peak - self.start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-population-"))
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'app.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartapp.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from smartapp import keys

    settings.SMART_JWKS = json.dumps(keys.generate_private_jwks())
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    public = json.dumps(keys.public_jwks()).encode()

    from tests.sandbox_server import start_sandbox
    from tests.static_server import serve_bytes

    record: dict = {"patients": args.patients}
    with serve_bytes(public, "application/json") as jwks_base:
        client = {
            "client_id": "bench-backend",
            "jwks_url": f"{jwks_base}/.well-known/jwks.json",
            "redirect_uris": ["http://localhost:1/callback"],
        }
        started = time.monotonic()
        with start_sandbox(
            work / "sandbox.sqlite3", [client], population=args.patients, timeout=600
        ) as sandbox:
            record["sandbox_start_s"] = round(time.monotonic() - started, 1)
            sandbox.set_faults("bench-backend", bulk_retry_after=0)
            from django.contrib.auth import get_user_model

            from population.models import PatientSummary
            from population.sync import sync
            from smartapp.models import BackendRegistration, Ehr

            ehr = Ehr.objects.create(
                name="Sandbox", slug="sandbox", iss=sandbox.fhir_base, client_id="x", client_secret="s"
            )
            reg = BackendRegistration.objects.create(ehr=ehr, client_id="bench-backend", group_id="pop")
            with PeakRss() as rss:
                started = time.monotonic()
                run = sync(reg, full=True)
                record["population_export_s"] = round(time.monotonic() - started, 1)
            if run.status != "succeeded":
                print(f"sync failed: {run.errors}", file=sys.stderr)
                return 1
            record["population_rss_mb"] = rss.growth
            record["resources"] = run.resources
            record["summary_rows"] = PatientSummary.objects.filter(ehr=ehr, group_id="pop").count()
    staff = get_user_model().objects.create_superuser("bench", password="x")
    browser = Client()
    browser.force_login(staff)
    url = "/population/sandbox/pop/"
    timings = {}
    for label, query in {
        "page": {},
        "page_5": {"page": "5"},
        "bp_uncontrolled": {"bp": "1", "sort": "bp"},
        "a1c_9": {"a1c": "1", "sort": "a1c"},
        "unseen": {"unseen": "1", "sort": "seen"},
    }.items():
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            response = browser.get(url, query)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        timings[label] = round(statistics.median(samples), 1)
    record["population_page_ms"] = max(timings.values())
    record["population_page_ms_by_query"] = timings
    record["database"] = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(json.dumps(record, indent=2))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
