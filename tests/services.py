"""Throw-away PostgreSQL and Redis servers from Debian's packages, for the fault tests.

Installed with apt-get when missing (as `.ci/postgres-tests` does), each in a temp dir on a free
loopback port, and stopped by the caller (`stop()`), never touching a system service. Both can
be stopped and started again mid-test to simulate an outage.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.net import free_port


def _root() -> bool:
    return os.getuid() == 0


def apt_install(package: str) -> None:
    """apt-get install `package` (quietly); sudo when not root."""
    sudo = [] if _root() else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
    )


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(found[-1]) if found and Path(found[-1], "initdb").exists() else None


class Postgres:
    """A PostgreSQL cluster in `workdir`; `url` for the app; `restart()` for an outage."""

    def __init__(self, workdir: Path):
        if _pg_bindir() is None:
            apt_install("postgresql")
        self.bindir = _pg_bindir()
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.url = f"postgres://smartapp:{self.password}@127.0.0.1:{self.port}/smartapp"

    def _as_pg(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        # PostgreSQL refuses to run as root: run it as the `postgres` user Debian's package creates.
        cmd = ["runuser", "-u", "postgres", "--", *args] if _root() else list(args)
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    def create(self) -> Postgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if _root():
            shutil.chown(self.workdir, "postgres")
            shutil.chown(pwfile, "postgres")
        self._as_pg(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.start()
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run(
            [
                str(self.bindir / "psql"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                "-c", f"CREATE ROLE smartapp LOGIN CREATEDB PASSWORD '{self.password}'",
                "-c", "CREATE DATABASE smartapp OWNER smartapp",
            ],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        return self

    def start(self) -> None:
        # Durability off: a database that dies with the test does not need fsync.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._as_pg(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "server.log"),
            "-w", "-t", "30", "start", "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_pg(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


class Redis:
    """A redis-server without persistence in `workdir`; `stop()`/`start()` for an outage."""

    def __init__(self, workdir: Path):
        if shutil.which("redis-server") is None:
            apt_install("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> Redis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "yes",
            ],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
