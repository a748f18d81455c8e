"""Per test process, one freshly built SQLite database of each kind, copied for each server.

Every end-to-end stack used to migrate its own app database and seed its own sandbox database
(about 12,000 FHIR resources): seconds of CPU per stack, and the first test of each stack paid
them. The first build in a test process still runs the real commands (migrate, createcachetable,
runsandbox's seeding) on an empty file; later servers start from a copy made with SQLite's
backup API (consistent, WAL included).
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_lock = threading.Lock()
_built: dict[str, Path] = {}
_dir: Path | None = None


def _template_dir() -> Path:
    global _dir
    if _dir is None:
        _dir = Path(tempfile.mkdtemp(prefix="smartapp-db-templates-"))
        atexit.register(shutil.rmtree, _dir, True)
    return _dir


def copy_of(kind: str, dest: Path, build: Callable[[Path], None]) -> None:
    """Make `dest` a copy of the `kind` template, building it with `build(path)` on first use."""
    with _lock:
        template = _built.get(kind)
        if template is None:
            template = _template_dir() / f"{len(_built)}.sqlite3"
            build(template)
            _built[kind] = template
    dest.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(template) as source, sqlite3.connect(dest) as target:
        source.backup(target)
