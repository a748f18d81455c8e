"""The benchmark's interval arithmetic: waves, in-flight time, percentiles, Server-Timing parsing."""

from __future__ import annotations

from bench.timeline import count_waves, covered, percentile, server_timing, slowest


def test_it_counts_one_wave_for_overlapping_requests():
    assert count_waves([(0.0, 0.05), (0.001, 0.06), (0.002, 0.055)]) == 1


def test_it_counts_a_new_wave_for_a_request_that_starts_after_all_earlier_ones_ended():
    # four queries in parallel, then two next pages of one search, one after the other
    intervals = [(0, 5), (0.1, 6), (0.2, 5.5), (0.3, 4), (6.1, 11), (11.2, 16)]
    assert count_waves(intervals) == 3


def test_it_chains_overlaps_into_one_wave():
    # b overlaps a, c overlaps only b: all in flight back to back without a gap
    assert count_waves([(0, 2), (1, 4), (3, 5)]) == 1
    assert count_waves([]) == 0


def test_it_measures_the_union_of_in_flight_time():
    assert covered([(0, 2), (1, 4), (6, 7)]) == 5
    assert covered([]) == 0
    assert slowest([(0, 2), (1, 4.5), (6, 7)]) == 3.5


def test_it_takes_nearest_rank_percentiles():
    values = list(range(1, 21))
    assert percentile(values, 50) == 10
    assert percentile(values, 90) == 18
    assert percentile([], 50) is None


def test_it_parses_server_timing_metrics_with_durations():
    header = 'fhir;dur=52.3;desc="EHR wait", app;dur=7, cache;desc="hit", total;desc=x;dur="9.5"'
    assert server_timing(header) == {"fhir": 52.3, "app": 7.0, "total": 9.5}
    assert server_timing(None) == {}
