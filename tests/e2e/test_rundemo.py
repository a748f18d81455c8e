"""`make run`'s command: the demo starts both servers, registered with each other, and stops cleanly.

Each demo runs in its own process group on free ports; whatever happens in a test, the fixture's
finalizer kills the whole group, so no server outlives the test (nor holds a port another uses).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.net import REPO, free_port, wait_until_ready
from tests.stack import Browser

pytestmark = pytest.mark.e2e


@dataclass
class Demo:
    process: subprocess.Popen
    app_port: int
    ehr_port: int
    log_path: Path

    @property
    def app_url(self) -> str:
        return f"http://localhost:{self.app_port}"

    @property
    def ehr_url(self) -> str:
        return f"http://127.0.0.1:{self.ehr_port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_running(self) -> None:
        wait_until_ready(f"{self.ehr_url}/_sandbox/health", self.process, timeout=90, log=self.output)
        wait_until_ready(f"{self.app_url}/healthz", self.process, timeout=90, log=self.output)
        deadline = time.monotonic() + 30
        while "is running" not in self.output() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop_with(self, signum: int, group: bool = False) -> int:
        """Send `signum` (to the whole group, as a terminal's Ctrl-C does, if `group`); the exit code."""
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        return self.process.wait(timeout=30)


def _demo_env(tmp_path: Path) -> dict[str, str]:
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
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def start_demo(tmp_path, request):
    """Start `manage.py rundemo` on free ports in a new session; its group is killed at teardown."""
    started: list[Demo] = []

    def start(*args: str, app_port: int | None = None, ehr_port: int | None = None) -> Demo:
        app_port, ehr_port = app_port or free_port(), ehr_port or free_port()
        log_path = tmp_path / f"rundemo-{len(started)}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "rundemo", "--app-port", str(app_port),
                 "--ehr-port", str(ehr_port), *args],
                cwd=REPO, env=_demo_env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        demo = Demo(process, app_port, ehr_port, log_path)
        started.append(demo)
        return demo

    def kill_all() -> None:
        for demo in started:
            with contextlib.suppress(ProcessLookupError):  # the group is gone already
                os.killpg(demo.process.pid, signal.SIGKILL)  # the servers are in the same group
            demo.process.wait(timeout=10)

    request.addfinalizer(kill_all)
    return start


def _assert_ports_closed(demo: Demo) -> None:
    for port in (demo.app_port, demo.ehr_port):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            except requests.ConnectionError:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"port {port} still answers after the demo stopped:\n{demo.output()[-2000:]}")


@pytest.mark.parametrize(
    ("auth_method", "signum", "group"),
    [
        ("client_secret_basic", signal.SIGINT, True),  # Ctrl-C in a terminal
        ("private_key_jwt", signal.SIGTERM, False),  # `kill`, or a supervisor
    ],
)
def test_it_runs_the_demo_and_a_standalone_launch_works_against_it(start_demo, auth_method, signum, group):
    demo = start_demo("--auth-method", auth_method)
    demo.wait_running()
    output = demo.output()
    assert f"{demo.ehr_url}/ehr/" in output
    assert f"{demo.app_url}/" in output
    assert "log in as admin / demo" in output

    stack = SimpleNamespace(
        app=SimpleNamespace(base_url=demo.app_url),
        sandbox=SimpleNamespace(base_url=demo.ehr_url),
        slug="sandbox",
    )
    page = Browser(stack).standalone_launch(patient="pat-garcia")
    assert page.status_code == 200, page.text[:500]
    assert "Garcia, Maria Elena" in page.text

    assert demo.stop_with(signum, group=group) == 0, demo.output()[-2000:]
    assert "Stopping both servers" in demo.output()
    _assert_ports_closed(demo)


def test_it_stops_both_servers_on_sighup(start_demo):
    demo = start_demo()
    demo.wait_running()
    assert demo.stop_with(signal.SIGHUP) == 0, demo.output()[-2000:]
    assert "Stopping both servers (SIGHUP)" in demo.output()
    _assert_ports_closed(demo)


def test_it_stops_on_sigint_even_when_started_with_sigint_ignored(start_demo):
    """A background job (`make run &`, or the suite run with `&`) inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the child, as from a shell
    try:
        demo = start_demo()
    finally:
        signal.signal(signal.SIGINT, previous)
    demo.wait_running()
    assert demo.stop_with(signal.SIGINT) == 0, demo.output()[-2000:]
    _assert_ports_closed(demo)


def test_it_says_which_port_is_busy_and_exits_non_zero(start_demo):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        demo = start_demo(ehr_port=busy)
        code = demo.process.wait(timeout=60)
    assert code != 0
    assert f"the EHR port {busy} (--ehr-port) already in use" in demo.output()
    assert "Traceback" not in demo.output()


def test_it_lets_the_demo_admin_sign_in_to_the_app_admin(start_demo):
    demo = start_demo()
    demo.wait_running()
    stack = SimpleNamespace(app=SimpleNamespace(base_url=demo.app_url), sandbox=None, slug="sandbox")
    browser = Browser(stack)
    login = browser.get(f"{demo.app_url}/admin/")
    assert login.status_code == 200 and 'name="password"' in login.text
    admin = browser.submit(login, {"username": "admin", "password": "demo", "next": "/admin/"})
    assert admin.status_code == 200
    assert "Site administration" in admin.text
    assert "EHRs" in admin.text
    assert demo.stop_with(signal.SIGTERM) == 0


def test_it_refuses_to_run_or_create_its_admin_without_debug(tmp_path):
    env = _demo_env(tmp_path)
    # Even with the sandbox forced on, DEBUG off means no demo and no admin/demo account.
    env.update({"DEBUG": "False", "SANDBOX_ENABLED": "True", "SANDBOX_ALLOW_WITHOUT_DEBUG": "True",
                "TOKEN_ENCRYPTION_KEYS": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
                "ALLOWED_HOSTS": "localhost"})  # fmt: skip
    done = subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--app-port", str(free_port()),
         "--ehr-port", str(free_port())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "run it with DEBUG=True" in done.stderr
    assert not (tmp_path / "app.sqlite3").exists()  # not even migrated, let alone an admin in it
