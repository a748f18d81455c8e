"""Two app instances (gunicorn, separate ports) sharing a real PostgreSQL and Redis, the sandbox
EHR as their EHR, and a bounded load of dashboard reloads to run faults under.

Run by `.ci/fault-tests` (`pytest -m faults tests/faults`); skipped in the normal suite, which
runs on SQLite without these services.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

from scripts.refresh_race import DASHBOARD_MARKER, launch_dashboard
from tests.app_server import AppServer, app_env
from tests.net import REPO, free_port, wait_until_ready
from tests.sandbox_server import start_sandbox
from tests.services import Postgres, Redis
from tests.stack import CLIENT_ID, EHR_SLUG, Stack

_H1 = re.compile(r"<h1[^>]*>([^<]*)</h1>")
PATIENTS = ("pat-garcia", "pat-chen", "pat-odd", "pat-blank")
ARTIFACTS = REPO / "test-artifacts" / "faults"
# Short HTTP timeouts keep the refresh lock (sized on the slowest token call) short, so a lock left
# by a killed instance expires within the test.
APP_ENV = {
    "SMART_HTTP_CONNECT_TIMEOUT": "1",
    "SMART_HTTP_READ_TIMEOUT": "2",
    "SMART_HTTP_DEADLINE": "2",  # a token call: at most 2 x (2 + 1 s slack) + 0.3 s; lock 12 s
    "SMART_REFRESH_SKEW_SECONDS": "1",
    "SMART_REFRESH_BACKOFF_SECONDS": "1",
    "LOG_LEVEL": "WARNING",
}
TOKEN_TTL = 4  # seconds: every launch refreshes every few seconds under the load


def pytest_collection_modifyitems(config, items):
    if "faults" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL and Redis: run .ci/fault-tests")
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)


class Instance:
    """One app instance: a gunicorn master and its worker, in their own process group."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env, self.port, self.log_path = env, port, log_path
        self.base_url = f"http://localhost:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "smartapp.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--threads", "8", "--worker-class", "gthread", "--timeout", "60",
                "--graceful-timeout", "2",
            ],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_until_ready(f"http://127.0.0.1:{self.port}/healthz", self.process)

    def kill(self) -> None:
        """kill -9 the master and its workers at once: a crashed instance, no cleanup."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class FaultStack:
    postgres: Postgres
    redis: Redis
    stack: Stack  # the sandbox and instance A (for launches)
    instances: list[Instance]
    users: list[tuple[str, str]] = field(default_factory=list)  # (dashboard path, Cookie header)

    @property
    def sandbox(self):
        return self.stack.sandbox

    def expire_launches(self) -> int:
        with psycopg.connect(self.postgres.url.replace("postgres://", "postgresql://")) as db:
            return db.execute(
                "UPDATE smartapp_launch SET expires_at = now() - interval '5 seconds'"
            ).rowcount

    def get(self, instance: Instance, user: int, timeout: float = 30) -> requests.Response:
        path, cookie = self.users[user]
        return requests.get(
            instance.base_url + path, headers={"Cookie": cookie}, timeout=timeout, allow_redirects=False
        )

    def all_dashboards_work(self) -> bool:
        return all(
            (r := self.get(inst, u)).status_code == 200 and DASHBOARD_MARKER in r.text
            for inst in self.instances
            for u in range(len(self.users))
        )


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory) -> FaultStack:
    workdir = tmp_path_factory.mktemp("faults")
    postgres = Postgres(Path(f"/tmp/smartapp-faults-pg-{os.getpid()}")).create()
    redis = Redis(workdir / "redis").start()
    instances: list[Instance] = []
    sandbox = None
    try:
        ports = [free_port(), free_port()]
        base = f"http://localhost:{ports[0]}"  # both instances answer for one public base URL
        sandbox = start_sandbox(
            workdir / "sandbox.sqlite3",
            [
                {
                    "client_id": CLIENT_ID,
                    "name": "SMART Dashboard",
                    "redirect_uris": [f"{base}/callback"],
                    "launch_url": f"{base}/launch",
                    "client_secret": "fault-tests-secret",
                }
            ],
        )
        for port, name in zip(ports, "ab", strict=True):
            env = app_env(workdir / "unused.sqlite3", ports[0], DATABASE_URL=postgres.url, **APP_ENV)
            env["REDIS_URL"] = redis.url
            instances.append(Instance(env, port, workdir / f"app-{name}.log"))
        first = AppServer(base_url=base, env=instances[0].env)
        first.manage("migrate", "--noinput")
        first.manage(
            "register_ehr", "--name", "Sandbox EHR", "--iss", sandbox.fhir_base, "--client-id", CLIENT_ID,
            "--client-secret=fault-tests-secret", "--frame-ancestor", sandbox.base_url, "--slug", EHR_SLUG,
        )  # fmt: skip
        for instance in instances:
            instance.start()
        first.process = instances[0].process
        first.log_path = instances[0].log_path
        stack = Stack(sandbox=sandbox, app=first, client_secret="fault-tests-secret")
        faults = FaultStack(postgres, redis, stack, instances)
        for patient in PATIENTS:
            url, cookie = launch_dashboard(stack, patient=patient)
            faults.users.append((url.removeprefix(base), cookie))
        sandbox.set_faults(CLIENT_ID, access_token_ttl=TOKEN_TTL)
        yield faults
    finally:
        for instance in instances:
            instance.stop()
        if sandbox is not None:
            sandbox.stop()
        redis.close()
        postgres.close()


@dataclass
class Sample:
    at: float  # seconds since the load started
    user: int
    instance: int
    status: int  # -1: no HTTP answer (connection refused or reset)
    dashboard: bool
    retry_link: bool
    seconds: float
    title: str = ""  # the <h1> of a non-200 page


class Load:
    """Each user reloads their dashboard without think time, alternating the two instances."""

    def __init__(self, faults: FaultStack, max_requests: int = 5000):
        self.faults = faults
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.max_requests = max_requests
        self.started = 0.0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def _user(self, user: int) -> None:
        turn = user
        while not self.stop_event.is_set() and len(self.samples) < self.max_requests:
            index = turn % len(self.faults.instances)
            turn += 1
            at = self.now()
            try:
                response = self.faults.get(self.faults.instances[index], user)
                status, text = response.status_code, response.text
                retry = status == 503 and "Try again</a>" in text and "Retry-After" in response.headers
            except requests.RequestException:
                status, text, retry = -1, "", False
            title = _H1.search(text) if status not in (200, -1) else None
            sample = Sample(
                at, user, index, status, DASHBOARD_MARKER in text, retry, self.now() - at,
                title.group(1).strip() if title else "",
            )  # fmt: skip
            with self._lock:
                self.samples.append(sample)
            if status == -1:
                time.sleep(0.2)  # a dead instance: do not spin

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._user, args=(u,), daemon=True) for u in range(len(self.faults.users))
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def report(self, fault_start: float, fault_end: float) -> dict:
        """Requests, statuses by phase, and recovery: from the fault's end to the last non-200."""
        statuses = Counter(str(s.status) for s in self.samples)
        before = Counter(str(s.status) for s in self.samples if s.at < fault_start)
        during = Counter(str(s.status) for s in self.samples if fault_start <= s.at < fault_end)
        after = Counter(str(s.status) for s in self.samples if s.at >= fault_end)
        pages = Counter(f"{s.status} {s.title}" for s in self.samples if s.title)
        bad_after = [s.at + s.seconds for s in self.samples if s.at >= fault_end and s.status != 200]
        return {
            "requests": len(self.samples),
            "duration_s": round(max((s.at + s.seconds for s in self.samples), default=0), 1),
            "statuses": dict(statuses),
            "statuses_before_fault": dict(before),
            "statuses_during_fault": dict(during),
            "statuses_after_fault": dict(after),
            "error_pages": dict(pages),
            "fault_s": round(fault_end - fault_start, 1),
            "recovery_s": round(max(bad_after) - fault_end, 1) if bad_after else 0.0,
            "slowest_s": round(max((s.seconds for s in self.samples), default=0), 2),
        }
