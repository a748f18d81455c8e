"""Start the sandbox EHR in a subprocess for tests: `start_sandbox(db_path, clients)`.

Each server gets its own SQLite file and a free loopback port, is polled until ready, and is
always stopped (use it as a context manager or call `.stop()`). Client dicts take the fields of
`sandbox.registry.from_dict`: client_id, client_secret | jwks_url | jwks, redirect_uris (or
redirect_uri), launch_url, scope, name, rotate_refresh_tokens, consent_on_ehr_launch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from tests import dbtemplates
from tests.net import REPO, free_port, wait_until_ready


class SandboxServer:
    """A running sandbox EHR; `.base_url`, `.fhir_base`, helpers for the test-only endpoints."""

    def __init__(
        self, process: subprocess.Popen, base_url: str, log_path: Path, db_path: Path | None = None
    ) -> None:
        self.process = process
        self.db_path = db_path  # its SQLite file, for tests that walk whatever data it holds
        self.base_url = base_url
        self.fhir_base = base_url + "/fhir"
        self.token_url = base_url + "/auth/token"
        self.authorize_url = base_url + "/auth/authorize"
        self.log_path = log_path

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- test-only endpoints (loopback) ------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs) -> dict:
        resp = requests.request(method, self.base_url + path, timeout=10, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def set_faults(self, client_id: str, merge: bool = False, **faults) -> dict:
        """Replace (or merge into) a client's faults, e.g. set_faults("app", latency_ms=200)."""
        return self._call(
            "POST", "/_sandbox/faults", json={"client_id": client_id, "faults": faults, "merge": merge}
        )

    def reset_faults(self, client_id: str | None = None) -> dict:
        return self._call(
            "DELETE", "/_sandbox/faults", params={"client_id": client_id} if client_id else None
        )

    def stats(self) -> dict:
        return self._call("GET", "/_sandbox/stats")

    def reset_stats(self) -> dict:
        return self._call("DELETE", "/_sandbox/stats")

    def register_client(self, client: dict) -> dict:
        return self._call("POST", "/_sandbox/clients", json=client)

    def delete_resource(self, reference: str) -> list[str]:
        """Delete `Type/id` at the EHR (a Patient with its compartment); the references deleted."""
        return self._call("POST", "/_sandbox/delete", json={"resource": reference})["deleted"]

    def create_launch(
        self, client_id: str, patient: str, encounter: str = "", user: str = "Practitioner/prac-smith"
    ) -> dict:
        """An EHR launch as the chart's app tab makes it: {"launch", "iss", "launch_url"}."""
        body = {"client_id": client_id, "patient": patient, "encounter": encounter, "user": user}
        return self._call("POST", "/_sandbox/launch", json=body)


def _seed(env: dict[str, str], db_path: Path, anchor: str | None) -> None:
    """A fresh sandbox database: migrated and seeded by `runsandbox --no-serve`."""
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "runsandbox", "--db", str(db_path), "--no-serve",
         *(["--anchor", anchor] if anchor else [])],
        cwd=REPO, env={**env, "SANDBOX_DATABASE_URL": f"sqlite:///{db_path}"},
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def start_sandbox(
    db_path: Path,
    clients: list[dict],
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 60.0,
    anchor: str | None = None,
    population: int = 0,
) -> SandboxServer:
    """Start `manage.py runsandbox` on a free port with its own DB, register clients, wait until ready.

    `anchor` (YYYY-MM-DD) fixes the data's today; by default it is today, as in the demo."""
    db_path = Path(db_path).resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    clients_file = db_path.with_name(db_path.name + ".clients.json")
    clients_file.write_text(json.dumps(clients))
    log_path = db_path.with_name(db_path.name + ".log")
    env = {
        **os.environ,
        "DEBUG": "True",
        "DJANGO_SETTINGS_MODULE": "sandbox.settings",
        "SANDBOX_DATABASE_URL": f"sqlite:///{db_path}",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SANDBOX_BASE_URL", None)
    if not db_path.exists():
        # A copy of this process's freshly seeded database (the same seed and anchor); the
        # server then only registers its clients.
        dbtemplates.copy_of(f"sandbox:{anchor}", db_path, lambda path: _seed(env, path, anchor))
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = [
        sys.executable,
        str(REPO / "manage.py"),
        "runsandbox",
        netloc,
        "--db",
        str(db_path),
        "--clients",
        str(clients_file),
        *(["--anchor", anchor] if anchor else []),
        *(["--population", str(population)] if population else []),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = SandboxServer(process, f"http://{netloc}", log_path, db_path)
    try:
        wait_until_ready(server.base_url + "/_sandbox/health", process, timeout, log=server.log)
    except BaseException:
        server.stop()
        raise
    return server
