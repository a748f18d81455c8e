"""Loopback plumbing shared by the test servers: the repo root, free ports, readiness polling."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_ready(
    url: str, process: subprocess.Popen, timeout: float = 30.0, log: Callable[[], str] = lambda: ""
) -> None:
    """Poll `url` until it answers 2xx, failing fast (with the server's log) if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}:\n{log()[-3000:]}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log()[-3000:]}")
