"""Independent tasks (FHIR queries, the style fetch) run side by side on one process-wide pool of threads.

A pool per page load paid a thread start per query and staggered the wave's requests; the
shared pool keeps idle threads ready. It is created on first use, so never before gunicorn
forks its workers. A pool thread outlives requests, so Django's end-of-request tidying of
database connections never runs in it: every task ends with `close_old_connections()`, the
same call Django makes when a request finishes (honouring CONN_MAX_AGE and health checks).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import close_old_connections

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


def _in_pool(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    finally:
        close_old_connections()  # what Django does after a request, for this long-lived thread


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Run `fn(*args)` on the shared pool, in a copy of the caller's context (its request id)."""
    return pool().submit(contextvars.copy_context().run, _in_pool, fn, *args)


def start(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start `fn(*args)` on the shared pool; the returned `finish()` gives its result.

    If no pool thread has taken the task by the time `finish()` is called (every thread busy),
    the caller runs it itself rather than wait for a thread.
    """
    future = submit(fn, *args)

    def finish() -> Any:
        if future.cancel():
            return fn(*args)
        return future.result()

    return finish


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


@dataclass(frozen=True)
class Step:
    """Work on the results of other tasks or steps (`needs`), run as soon as the last of them is in.

    `run` gets the results so far (each a value or an exception) and gives the step's own result.
    A need that is neither a task nor a step counts as met.
    """

    needs: tuple[str, ...]
    run: Callable[[dict[str, Any]], Any]


def run_parallel(
    tasks: dict[str, Callable[[], Any]], max_workers: int, steps: dict[str, Step] | None = None
) -> dict[str, Any]:
    """Run independent tasks, at most `max_workers` at a time; each result is its value or its exception.

    The calling thread works too: it runs one lane of tasks itself while the pool runs the others,
    so a page still loads (one query after another) when every pool thread is busy.

    `steps` overlap the wave: a panel is built in the lane that received its last input while
    slower queries are still out, instead of after the whole wave. Tasks come first (a step never
    delays a request's start); a step runs in whichever lane is free once its needs are in.
    """
    steps = dict(steps or {})
    pending = list(tasks.items())
    results: dict[str, Any] = {}
    known = set(tasks) | set(steps)
    waiting = {name: {n for n in step.needs if n in known} for name, step in steps.items()}
    ready: list[str] = []
    lock = threading.Lock()

    def release(done: str | None) -> None:  # under the lock
        for name, needs in list(waiting.items()):
            needs.discard(done)
            if not needs:
                del waiting[name]
                ready.append(name)

    def lane() -> None:
        while True:
            with lock:
                if pending:
                    name, fn = pending.pop(0)
                elif ready:
                    name = ready.pop(0)
                    fn = partial(steps[name].run, results)
                else:
                    return
            value = _guarded(name, fn)
            with lock:
                results[name] = value
                release(name)

    release(None)  # steps with no task or step to wait for are ready from the start
    lanes = max(1, min(max_workers, len(tasks)))
    # Each helper runs in a copy of the request's context, so its log lines carry the request id.
    helpers = [submit(lane) for _ in range(lanes - 1)]
    lane()
    for helper in helpers:
        # A helper still queued (every pool thread busy) has nothing left to do: the calling
        # thread's lane took its tasks. Never wait for a thread only to find that out.
        if not helper.cancel():
            helper.result()
    return results
