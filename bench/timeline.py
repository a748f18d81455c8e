"""Pure helpers over request intervals: waves, slowest request, percentiles, Server-Timing parsing."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence

from clinical.timing import covered

Interval = tuple[float, float]
__all__ = ["count_waves", "covered", "median", "percentile", "server_timing", "slowest"]

_METRIC_RE = re.compile(r"^\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(.*)$")
_DUR_RE = re.compile(r"(?:^|;)\s*dur\s*=\s*\"?([0-9]+(?:\.[0-9]+)?)\"?")


def count_waves(intervals: Iterable[Interval]) -> int:
    """Groups of overlapping requests: a request that starts after every earlier one ended opens a wave.

    Requests in one parallel wave overlap in time; a request that could only start once another
    answered (a next page, a dependent read) begins after it ended, so it opens a new wave.
    """
    waves = 0
    wave_end = float("-inf")
    for start, end in sorted(intervals):
        if start >= wave_end:
            waves += 1
            wave_end = end
        else:
            wave_end = max(wave_end, end)
    return waves


def slowest(intervals: Iterable[Interval]) -> float:
    return max((end - start for start, end in intervals), default=0.0)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def server_timing(header: str | None) -> dict[str, float]:
    """`Server-Timing: fhir;dur=12.5, app;dur=3` → {"fhir": 12.5, "app": 3.0} (metrics without dur skipped).

    Reference: https://www.w3.org/TR/server-timing/#the-server-timing-header-field
    """
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        m = _METRIC_RE.match(part)
        if not m:
            continue
        dur = _DUR_RE.search(m.group(2))
        if dur:
            out[m.group(1)] = float(dur.group(1))
    return out
