"""`Server-Timing` on dashboard responses: time spent waiting on the EHR vs in the app itself.

The dashboard's FHIR queries run in parallel, so summing their durations would overstate the
wait: the EHR wait is the union of the in-flight intervals (the time at least one request to the
EHR was outstanding), and `app` is the rest of the request's time in this process.
Reference: https://www.w3.org/TR/server-timing/
"""

from __future__ import annotations

import time
from collections.abc import Iterable

Interval = tuple[float, float]

REQUEST_ATTR = "ehr_wait_intervals"


def covered(intervals: Iterable[Interval]) -> float:
    """Length of the union of the intervals (same unit as the input)."""
    total = 0.0
    cur_start = cur_end = None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def header_value(ehr_ms: float, app_ms: float) -> str:
    return f'fhir;dur={ehr_ms:.1f};desc="EHR wait", app;dur={app_ms:.1f};desc="App"'


def note_waits(request, intervals: Iterable[Interval]) -> None:
    """Add perf_counter() intervals spent waiting on the EHR to this request's account."""
    waits = getattr(request, REQUEST_ATTR, None)
    if waits is None:
        waits = []
        setattr(request, REQUEST_ATTR, waits)
    waits.extend(intervals)


class ServerTimingMiddleware:
    """Adds `Server-Timing: fhir;dur=…, app;dur=…` to responses whose view noted EHR waits.

    Outermost middleware, so `app` includes the whole middleware stack and template rendering.
    Durations only, no identifiers or data.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        waits = getattr(request, REQUEST_ATTR, None)
        if waits is not None:
            total_ms = (time.perf_counter() - start) * 1000
            ehr_ms = covered(waits) * 1000
            response["Server-Timing"] = header_value(ehr_ms, max(total_ms - ehr_ms, 0.0))
        return response
