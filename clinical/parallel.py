"""Independent tasks (FHIR queries) run side by side on one process-wide pool of threads.

A pool per page load paid a thread start per query and staggered the wave's requests; the
shared pool keeps idle threads ready. It is created on first use, so never before gunicorn
forks its workers.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from clinical import fhir

logger = logging.getLogger(__name__)

THREAD_PREFIX = "fhir-query"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process's query threads (FHIR_QUERY_THREADS, shared by all requests)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.FHIR_QUERY_THREADS, thread_name_prefix=THREAD_PREFIX
            )
        return _pool


def _guarded(name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except fhir.FhirError as exc:
        return exc
    except Exception as exc:  # a bug in one panel must not take the page down
        # The type and where it was raised, never the message (it may hold PHI, e.g. an id).
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        logger.error("dashboard panel %s failed: %s at %s", name, type(exc).__name__, where)
        return exc


def run_parallel(tasks: dict[str, Callable[[], Any]], max_workers: int) -> dict[str, Any]:
    """Run independent tasks, at most `max_workers` at a time; each result is its value or its exception.

    The calling thread works too: it runs one lane of tasks itself while the pool runs the others,
    so a page still loads (one query after another) when every pool thread is busy.
    """
    pending = list(tasks.items())
    results: dict[str, Any] = {}
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                if not pending:
                    return
                name, fn = pending.pop(0)
            results[name] = _guarded(name, fn)

    lanes = max(1, min(max_workers, len(tasks)))
    # Each helper runs in a copy of the request's context, so its log lines carry the request id.
    helpers = [pool().submit(contextvars.copy_context().run, lane) for _ in range(lanes - 1)]
    lane()
    for helper in helpers:
        # A helper still queued (every pool thread busy) has nothing left to do: the calling
        # thread's lane took its tasks. Never wait for a thread only to find that out.
        if not helper.cancel():
            helper.result()
    return results
