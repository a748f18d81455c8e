"""Bounded load test: N clinicians, each with their own launched session, reloading their dashboards
against the app (gunicorn) and the sandbox EHR on loopback.

    .venv/bin/python scripts/load_test.py                      # 10 users, 60 s, SQLite, 2 workers
    .venv/bin/python scripts/load_test.py --users 20 --duration 30 --workers 2
    .venv/bin/python scripts/load_test.py --database-url postgres://user:pw@127.0.0.1:5432/db

A plain thread-pool driver (no locust: one dependency less, and the app, not the driver, is what
is measured). Every loop is bounded twice: by `--duration` seconds and by `--max-requests` in
total. Reports requests/s, latency p50/p95/p99 and errors as JSON; exits 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.refresh_race import DASHBOARD_MARKER, launch_dashboard  # noqa: E402
from tests.stack import Stack, start_stack  # noqa: E402

PATIENTS = ("pat-garcia", "pat-chen", "pat-odd", "pat-blank")
MAX_DURATION = 600.0  # seconds; a typo must not start an hour-long run


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0

    def take_ticket(self, cap: int) -> bool:
        with self.lock:
            if self.issued >= cap:
                return False
            self.issued += 1
            return True

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[index]


def _user(url: str, cookie: str, deadline: float, cap: int, tally: Tally, think: float) -> None:
    with requests.Session() as http:
        while time.monotonic() < deadline and tally.take_ticket(cap):
            start = time.perf_counter()
            error = None
            try:
                r = http.get(url, headers={"Cookie": cookie}, timeout=30, allow_redirects=False)
                if r.status_code != 200:
                    error = f"HTTP {r.status_code}"
                elif DASHBOARD_MARKER not in r.text:
                    error = "not the dashboard"
            except requests.RequestException as exc:
                error = type(exc).__name__
            tally.record(time.perf_counter() - start, error)
            if think:
                time.sleep(think)


def run_load(
    stack: Stack, users: int, duration: float, max_requests: int = 100_000, think_ms: int = 0
) -> dict:
    """Launch `users` sessions, then let each reload its dashboard until time or the cap runs out."""
    duration = min(max(duration, 0.1), MAX_DURATION)
    sessions = [launch_dashboard(stack, PATIENTS[i % len(PATIENTS)]) for i in range(users)]
    tally = Tally()
    stack.sandbox.reset_stats()
    started = time.monotonic()
    deadline = started + duration
    threads = [
        threading.Thread(
            target=_user, args=(url, cookie, deadline, max_requests, tally, think_ms / 1000), daemon=True
        )
        for url, cookie in sessions
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    elapsed = time.monotonic() - started
    lat = tally.latencies
    fhir = stack.sandbox.stats()["fhir"]["total"]
    return {
        "users": users,
        "duration_s": round(elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
        "fhir_requests_per_s": round(fhir / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p95_ms": round(percentile(lat, 95) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else 0.0,
        "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10, help="concurrent clinicians (default 10, max 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60, max 600)")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="total request cap (default 100000)"
    )
    parser.add_argument("--think-ms", type=int, default=0, help="pause between a user's reloads (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--database-url", default="", help="the app's DATABASE_URL (default: SQLite)")
    args = parser.parse_args(argv)
    env = {"DATABASE_URL": args.database_url} if args.database_url else {}
    with (
        tempfile.TemporaryDirectory(prefix="load-test-") as tmp,
        start_stack(Path(tmp), app_env={**env, "LOG_LEVEL": "WARNING"}, workers=args.workers) as stack,
    ):
        report = run_load(
            stack, max(1, min(args.users, 200)), args.duration, args.max_requests, args.think_ms
        )
    report.update({"workers": args.workers, "database": "postgresql" if env else "sqlite"})
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
