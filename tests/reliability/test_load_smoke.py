"""The load script's smoke mode: a few users for two seconds against the shared stack, no errors."""

from __future__ import annotations

import pytest

from scripts.load_test import percentile, run_load


def test_it_computes_nearest_rank_percentiles():
    values = [i / 100 for i in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (0.5, 0.95, 0.99)
    assert percentile([], 50) == 0.0


@pytest.mark.e2e
def test_it_holds_a_short_bounded_load_without_errors(rstack, leaks):
    report = run_load(rstack, users=3, duration=2.0, max_requests=60)
    assert report["errors"] == 0, report["error_kinds"]
    assert 0 < report["requests"] <= 60
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    leaks.check()
