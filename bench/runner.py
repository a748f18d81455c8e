"""Drive the stack (sandbox EHR + app under gunicorn) and take the measurements."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bench import peer
from bench.timeline import count_waves, median, percentile, server_timing, slowest
from tests.stack import Browser, Stack

PATIENT = "pat-chen"
ENCOUNTER = "enc-chen-current"
BIG_PATIENT = "pat-brooks"
LAUNCH_SCOPE = (
    "launch openid fhirUser patient/Patient.rs patient/Encounter.rs "
    "patient/Observation.rs patient/Condition.rs patient/DiagnosticReport.rs"
)
_DASHBOARD_RE = re.compile(r"/c/[\w-]+/$")


@dataclass
class Settings:
    latencies: list[int]
    launches: int
    reloads: int
    big_runs: int
    peer_runs: int


QUICK = Settings(latencies=[50], launches=3, reloads=20, big_runs=1, peer_runs=3)
FULL = Settings(latencies=[0, 50, 200], launches=7, reloads=30, big_runs=3, peer_runs=5)


@dataclass
class LaunchSample:
    wall_ms: float
    hops_ms: dict[str, float]
    fhir_requests: int
    waves: int
    token_exchange_ms: float
    slowest_single_query_ms: float
    dashboard_url: str
    requests_by_kind: dict[str, int]
    browser: Browser = field(repr=False)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def timed_launch(stack: Stack, patient: str, encounter: str = "") -> LaunchSample:
    """One EHR launch (the EHR creates the launch, untimed) from the app's launch URL to the dashboard."""
    sandbox = stack.sandbox
    launch = sandbox.create_launch(stack.client_id, patient, encounter)
    browser = Browser(stack)
    sandbox.reset_stats()
    start = time.perf_counter()
    page = browser.get(launch["launch_url"])
    wall = time.perf_counter() - start
    if page.status_code != 200 or not _DASHBOARD_RE.search(urlsplit(page.url).path):
        raise RuntimeError(f"launch did not end on the dashboard: {page.status_code} {page.url}")
    stats = sandbox.stats()
    timeline = stats["timeline"]
    fhir = [(e["start"], e["end"]) for e in timeline if e["kind"] in ("fhir", "style")]
    tokens = [e["end"] - e["start"] for e in timeline if e["kind"] == "token"]
    hops = {}
    for response in browser.history:
        name = _hop_name(urlsplit(response.url).path)
        hops[name] = hops.get(name, 0.0) + _ms(response.elapsed.total_seconds())
    return LaunchSample(
        wall_ms=_ms(wall),
        hops_ms=hops,
        fhir_requests=stats["fhir"]["total"],
        waves=count_waves(fhir),
        token_exchange_ms=_ms(sum(tokens)),
        slowest_single_query_ms=_ms(slowest(fhir)),
        dashboard_url=page.url,
        requests_by_kind=dict(Counter(e["kind"] for e in timeline)),
        browser=browser,
    )


def _hop_name(path: str) -> str:
    if path.startswith("/c/"):
        return "dashboard"
    return path.strip("/").replace("/", "_") or "root"


def warm_reloads(sample: LaunchSample, count: int) -> dict[str, Any]:
    """Reload a launched dashboard `count` times: wall (client side) and the Server-Timing split."""
    walls, fhir, app, overhead = [], [], [], []
    for _ in range(count):
        start = time.perf_counter()
        response = sample.browser.http.get(sample.dashboard_url, allow_redirects=False, timeout=30)
        wall = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"reload failed: {response.status_code}")
        timing = server_timing(response.headers.get("Server-Timing"))
        walls.append(wall)
        if "fhir" in timing:
            fhir.append(timing["fhir"])
            overhead.append(wall - timing["fhir"])
        if "app" in timing:
            app.append(timing["app"])
    return {
        "warm_reload_ms_p50": _round(median(walls)),
        "warm_fhir_ms_p50": _round(median(fhir)),
        "warm_overhead_ms_p50": _round(median(overhead)),
        "warm_overhead_ms_p90": _round(percentile(overhead, 90)),
        "warm_app_ms_p50": _round(median(app)),
        "warm_reloads": count,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- Worker memory ---------------------------------------------------------------------------


def worker_pid(stack: Stack) -> int:
    """The single gunicorn worker's pid (the stack runs with workers=1 for this)."""
    master = stack.app.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def _status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for {pid}")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5), so the next peak is this load's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def big_patient(stack: Stack, runs: int) -> dict[str, Any]:
    """The 10,000-observation patient: launch→dashboard time and the worker's peak RSS growth."""
    pid = worker_pid(stack)
    times, growth, dashboard = [], [], []
    for _ in range(runs):
        exact = reset_peak(pid)
        before = _status_kb(pid, "VmRSS" if exact else "VmHWM")
        sample = timed_launch(stack, BIG_PATIENT)
        after = _status_kb(pid, "VmHWM")
        times.append(sample.wall_ms)
        dashboard.append(sample.hops_ms.get("dashboard", 0.0))
        growth.append((after - before) / 1024)
    return {
        "big_patient_ms": _round(median(times)),
        "big_patient_dashboard_ms": _round(median(dashboard)),
        # The first run is the patient's first view (nothing parsed yet); later runs are reloads.
        "big_patient_dashboard_ms_runs": [_round(d) for d in dashboard],
        "big_patient_rss_mb": round(max(growth), 1),  # the worst run: the first load is the honest one
        "big_patient_rss_mb_runs": [round(g, 1) for g in growth],
        "big_patient_fhir_requests": sample.fhir_requests,
        "big_patient_waves": sample.waves,
    }


# --- A token from a real launch, for the side-by-side clients -------------------------------


def launch_token(stack: Stack, patient: str, encounter: str) -> str:
    """A real EHR launch as the app's registered client: authorize (PKCE), then the token endpoint.

    The code is taken from the redirect to the app's callback without following it; the token
    stays in memory and is never printed.
    """
    sandbox = stack.sandbox
    launch = sandbox.create_launch(stack.client_id, patient, encounter)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect_uri = f"{stack.app.base_url}/callback"
    params = {
        "response_type": "code",
        "client_id": stack.client_id,
        "redirect_uri": redirect_uri,
        "scope": LAUNCH_SCOPE,
        "state": secrets.token_urlsafe(16),
        "aud": sandbox.fhir_base,
        "launch": launch["launch"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": secrets.token_urlsafe(16),
    }
    resp = requests.get(f"{sandbox.authorize_url}?{urlencode(params)}", allow_redirects=False, timeout=30)
    location = resp.headers.get("Location", "")
    code = parse_qs(urlsplit(location).query).get("code", [""])[0]
    if not location.startswith(redirect_uri) or not code:
        raise RuntimeError(f"authorize did not return a code (status {resp.status_code})")
    token = requests.post(
        sandbox.token_url,
        auth=(stack.client_id, stack.client_secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout=30,
    )
    token.raise_for_status()
    return token.json()["access_token"]


def side_by_side(stack: Stack, token: str, runs: int) -> dict[str, Any]:
    """Ours parallel, ours sequential and fhirclient over the same queries, medians of `runs`."""
    queries = peer.dashboard_queries(PATIENT, ENCOUNTER)
    contenders = {
        "parallel": peer.ours(stack.sandbox.fhir_base, token, queries, max_workers=8),
        "sequential": peer.ours(stack.sandbox.fhir_base, token, queries, max_workers=1),
        "fhirclient": peer.fhirclient_run(stack.sandbox.fhir_base, token, queries),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    counts: dict[str, int] = {}
    for fn in contenders.values():
        fn()  # warm: imports, connection pools
    for _ in range(runs):
        for name, fn in contenders.items():  # interleaved, so drift hits all three alike
            ms, counts[name] = peer.timed(fn)
            times[name].append(ms)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the clients fetched different amounts of data: {counts}")
    parallel, sequential, other = (median(times[n]) for n in ("parallel", "sequential", "fhirclient"))
    return {
        "parallel_ms": _round(parallel),
        "sequential_ms": _round(sequential),
        "fhirclient_ms": _round(other),
        "ratio_vs_fhirclient": round(other / parallel, 2),
        "ratio_vs_sequential": round(sequential / parallel, 2),
        "side_by_side_resources": counts["parallel"],
    }


def setup_django(stack: Stack) -> None:
    """Our client reads the app's own settings (page size, caps, timeouts) in this process."""
    import django

    for key, value in stack.app.env.items():
        os.environ[key] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "smartapp.settings"
    django.setup()
