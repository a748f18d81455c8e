"""Refresh race across processes: N concurrent dashboard requests of one session whose access
token has just expired must cause exactly ONE refresh_token grant at the EHR, and all succeed.

    .venv/bin/python scripts/refresh_race.py                      # SQLite, 2 gunicorn workers
    .venv/bin/python scripts/refresh_race.py --database-url postgres://user:pw@127.0.0.1:5432/db
    .venv/bin/python scripts/refresh_race.py --requests 50 --rounds 3

Starts the sandbox EHR and the app on loopback (free ports, stopped on exit), launches once, then
per round: expires the launch's token in the app's database, resets the sandbox's counters and
fires the requests at once (each on its own connection, so the kernel spreads them over the
gunicorn workers). Prints a JSON report; exits 1 unless every round had one refresh and all 200s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.stackdb import expire_launches  # noqa: E402
from tests.stack import Browser, Stack, start_stack  # noqa: E402

DASHBOARD_MARKER = "Clinical summary"


def app_cookie_header(browser: Browser) -> str:
    """The app's cookies of this browser, as one Cookie header (the jar also holds the EHR's)."""
    return "; ".join(
        f"{c.name}={c.value}" for c in browser.http.cookies if c.domain in ("localhost", "localhost.local")
    )


def launch_dashboard(stack: Stack, patient: str = "pat-garcia") -> tuple[str, str]:
    """A standalone launch; returns (dashboard URL, Cookie header of that session)."""
    browser = Browser(stack)
    page = browser.standalone_launch(patient=patient)
    if page.status_code != 200 or "/c/" not in page.url:
        raise RuntimeError(f"launch failed: HTTP {page.status_code} at {page.url}")
    return page.url, app_cookie_header(browser)


def fire(url: str, cookie: str, count: int, timeout: float = 60.0) -> list[tuple[int, bool, float]]:
    """`count` simultaneous GETs (released by one barrier); (status, is dashboard, seconds) each."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, bool, float]] = [(0, False, 0.0)] * count

    def one(i: int) -> None:
        with requests.Session() as http:  # a fresh connection per request
            barrier.wait(timeout=timeout)
            start = time.perf_counter()
            try:
                r = http.get(url, headers={"Cookie": cookie}, timeout=timeout, allow_redirects=False)
                results[i] = (r.status_code, DASHBOARD_MARKER in r.text, time.perf_counter() - start)
            except requests.RequestException:
                results[i] = (-1, False, time.perf_counter() - start)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return results


def race_round(stack: Stack, url: str, cookie: str, count: int) -> dict:
    expired = expire_launches(stack)
    stack.sandbox.reset_stats()
    started = time.perf_counter()
    results = fire(url, cookie, count)
    elapsed = time.perf_counter() - started
    stats = stack.sandbox.stats()
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": count,
        "launches_expired": expired,
        "refresh_grants": stats["token"].get("refresh_token", 0),
        "statuses": statuses,
        "dashboards": sum(ok for _, ok, _ in results),
        "slowest_s": round(max(s for _, _, s in results), 3),
        "elapsed_s": round(elapsed, 3),
    }


def passed(report: dict) -> bool:
    return report["refresh_grants"] == 1 and report["dashboards"] == report["requests"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests per round (default 50)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default 1, at most 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--database-url", default="", help="the app's DATABASE_URL (default: SQLite)")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 20))
    env = {"DATABASE_URL": args.database_url} if args.database_url else {}
    reports = []
    with (
        tempfile.TemporaryDirectory(prefix="refresh-race-") as tmp,
        start_stack(Path(tmp), app_env=env, workers=args.workers) as stack,
    ):
        url, cookie = launch_dashboard(stack)
        for _ in range(rounds):
            reports.append(race_round(stack, url, cookie, max(1, min(args.requests, 500))))
    ok = all(passed(r) for r in reports)
    print(json.dumps({"database": "postgresql" if env else "sqlite", "workers": args.workers,
                      "rounds": reports, "passed": ok}, indent=2))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
