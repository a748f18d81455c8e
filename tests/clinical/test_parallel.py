"""The shared query pool: tasks side by side, bounded per call, failures kept per task."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from clinical import fhir, parallel
from clinical.parallel import THREAD_PREFIX, Step, run_parallel


def test_tasks_run_side_by_side():
    barrier = threading.Barrier(4, timeout=5)  # only passes if all four run at once
    results = run_parallel({f"t{i}": lambda i=i: (barrier.wait(), i)[1] for i in range(4)}, max_workers=8)
    assert results == {"t0": 0, "t1": 1, "t2": 2, "t3": 3}


def test_max_workers_bounds_how_many_run_at_once():
    running, peak, lock = 0, 0, threading.Lock()

    def task():
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return threading.current_thread().name

    names = run_parallel({f"t{i}": task for i in range(6)}, max_workers=2)
    assert peak == 2
    assert len(names) == 6
    sequential = run_parallel({f"t{i}": task for i in range(3)}, max_workers=1)
    assert set(sequential.values()) == {threading.current_thread().name}  # forced sequential: inline


def test_one_bounded_pool_serves_every_page(monkeypatch, settings):
    """Ten page loads at once share FHIR_QUERY_THREADS threads; none starts threads of its own."""
    settings.FHIR_QUERY_THREADS = 3
    monkeypatch.setattr(parallel, "_pool", None)  # a fresh pool with the setting above

    def task():
        time.sleep(0.02)
        return threading.current_thread()

    try:
        with ThreadPoolExecutor(10) as pages:
            loads = list(pages.map(lambda _: run_parallel({f"t{i}": task for i in range(4)}, 8), range(10)))
        assert all(len(load) == 4 for load in loads)
        pooled = {t for load in loads for t in load.values() if t.name.startswith(THREAD_PREFIX)}
        assert 1 <= len(pooled) <= 3
        assert parallel.pool() is parallel.pool()
    finally:
        parallel.pool().shutdown(wait=True)


def test_each_failure_stays_with_its_task(caplog):
    def forbidden():
        raise fhir.Forbidden("not authorized", status_code=403)

    def bug():
        raise KeyError("Patient/secret-id")

    results = run_parallel({"ok": lambda: 1, "denied": forbidden, "bug": bug}, max_workers=3)
    assert results["ok"] == 1
    assert isinstance(results["denied"], fhir.Forbidden)
    assert isinstance(results["bug"], KeyError)
    assert "secret-id" not in caplog.text  # the exception type is logged, never its text


@pytest.mark.parametrize("count", [0, 1])
def test_no_tasks_or_one_task_needs_no_pool_thread(count):
    results = run_parallel({f"t{i}": threading.current_thread for i in range(count)}, max_workers=8)
    assert all(t is threading.current_thread() for t in results.values())


def test_a_saturated_pool_does_not_hold_the_page(monkeypatch):
    """Every pool thread busy: the calling thread runs all the tasks and does not wait for the pool."""
    busy = ThreadPoolExecutor(max_workers=1)
    release = threading.Event()
    blocker = busy.submit(release.wait, 10)
    monkeypatch.setattr(parallel, "pool", lambda: busy)
    try:
        started = time.perf_counter()
        results = run_parallel({f"t{i}": threading.current_thread for i in range(3)}, max_workers=3)
        assert time.perf_counter() - started < 5
        assert all(t is threading.current_thread() for t in results.values())
        assert not blocker.done()
    finally:
        release.set()
        busy.shutdown(wait=True)


def test_a_pool_task_ends_as_a_request_does_for_its_database_connections(monkeypatch):
    """Django's own end-of-request call, in the long-lived pool thread: no thread-name checks."""
    closed = []
    note = lambda: closed.append(threading.current_thread().name)  # noqa: E731
    monkeypatch.setattr(parallel, "close_old_connections", note)
    started = threading.Event()
    finish = parallel.start(lambda x: started.set() or x * 2, 21)
    assert started.wait(5)  # a pool thread took it
    assert finish() == 42
    assert len(closed) == 1 and closed[0].startswith(THREAD_PREFIX)


def test_a_started_task_no_pool_thread_took_runs_in_the_caller(monkeypatch):
    class Queued:
        def cancel(self):
            return True  # still queued: every pool thread busy

    monkeypatch.setattr(parallel, "submit", lambda fn, *args: Queued())
    ran_in = []
    finish = parallel.start(lambda: ran_in.append(threading.current_thread().name) or "done")
    assert finish() == "done"
    assert ran_in == [threading.current_thread().name]


def test_a_step_runs_while_slower_tasks_are_still_out():
    """A panel is built as soon as its own query is in, not after the whole wave."""
    slow_started, step_done = threading.Event(), threading.Event()

    def slow():
        slow_started.set()
        assert step_done.wait(5), "the step waited for the slow task"
        return "slow"

    steps = {"built": Step(("fast",), lambda got: (step_done.set(), got["fast"] * 2)[1])}
    results = run_parallel({"fast": lambda: 21, "slow": slow}, max_workers=4, steps=steps)
    assert slow_started.is_set()
    assert results == {"fast": 21, "slow": "slow", "built": 42}


def test_steps_wait_for_every_need_including_other_steps():
    order: list[str] = []
    lock = threading.Lock()

    def note(name, value):
        with lock:
            order.append(name)
        return value

    tasks = {"a": lambda: note("a", 1), "b": lambda: (time.sleep(0.02), note("b", 2))[1]}
    steps = {
        "sum": Step(("a", "b"), lambda got: note("sum", got["a"] + got["b"])),
        "double": Step(("sum",), lambda got: note("double", got["sum"] * 2)),
        "free": Step(("not-planned",), lambda got: note("free", "ran")),  # an unknown need is met
    }
    results = run_parallel(tasks, max_workers=2, steps=steps)
    assert results["sum"] == 3 and results["double"] == 6 and results["free"] == "ran"
    assert order.index("sum") > max(order.index("a"), order.index("b"))
    assert order.index("double") > order.index("sum")


def test_a_failing_step_is_its_own_result_and_sees_failed_needs(caplog):
    def boom():
        raise fhir.FhirError("EHR down")

    steps = {
        "broken": Step(("ok",), lambda got: 1 / 0),
        "sees": Step(("down",), lambda got: type(got["down"]).__name__),
    }
    results = run_parallel({"ok": lambda: 1, "down": boom}, max_workers=2, steps=steps)
    assert isinstance(results["broken"], ZeroDivisionError)
    assert results["sees"] == "FhirError"
    assert "dashboard panel broken failed: ZeroDivisionError" in caplog.text


def test_steps_never_delay_a_task_when_lanes_are_short():
    """With one lane, every request starts before any build runs."""
    order: list[str] = []
    tasks = {name: (lambda name=name: order.append(name)) for name in ("t1", "t2", "t3")}
    steps = {"s1": Step(("t1",), lambda got: order.append("s1"))}
    run_parallel(tasks, max_workers=1, steps=steps)
    assert order == ["t1", "t2", "t3", "s1"]
