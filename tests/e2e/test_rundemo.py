"""`make run`'s command: the demo starts both servers, registered with each other, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from tests.net import REPO, free_port, wait_until_ready
from tests.stack import Browser

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "private_key_jwt"])
def test_it_runs_the_demo_and_a_standalone_launch_works_against_it(tmp_path, auth_method):
    app_port, ehr_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS", "SANDBOX_"))
    }
    env.update(
        {
            "DEBUG": "True",
            "SECRET_KEY": "demo-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
            "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.sqlite3'}",
            "SMART_JWKS_FILE": str(tmp_path / "jwks.json"),
            "LOG_LEVEL": "WARNING",
        }
    )
    log = (tmp_path / "rundemo.log").open("w")
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "rundemo", "--app-port", str(app_port), "--ehr-port", str(ehr_port),
         "--auth-method", auth_method],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until_ready(f"http://127.0.0.1:{ehr_port}/_sandbox/health", demo, timeout=90)
        wait_until_ready(f"http://localhost:{app_port}/healthz", demo, timeout=90)
        deadline = time.monotonic() + 30
        while "is running" not in (tmp_path / "rundemo.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        output = (tmp_path / "rundemo.log").read_text()
        assert f"http://127.0.0.1:{ehr_port}/ehr/" in output
        assert f"http://localhost:{app_port}/" in output

        stack = SimpleNamespace(
            app=SimpleNamespace(base_url=f"http://localhost:{app_port}"),
            sandbox=SimpleNamespace(base_url=f"http://127.0.0.1:{ehr_port}"),
            slug="sandbox",
        )
        page = Browser(stack).standalone_launch(patient="pat-garcia")
        assert page.status_code == 200, page.text[:500]
        assert "Garcia, Maria Elena" in page.text
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
        log.close()
    assert demo.returncode == 0, (tmp_path / "rundemo.log").read_text()[-2000:]
    for port in (app_port, ehr_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
