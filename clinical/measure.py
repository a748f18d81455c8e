"""A measure from its readings: the latest, the previous and the change, age and staleness, the
chart series, and a critical result that came back down (used by labs and vitals alike)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from clinical import display
from clinical.readings import CHART_MAX_POINTS, Measure, Reading, Series, When


def newest_first(readings: Iterable[Reading]) -> list[Reading]:
    readings = list(readings)
    dated = sorted((r for r in readings if r.when), key=lambda r: r.when.sort_key, reverse=True)
    return dated + [r for r in readings if not r.when]


def series_of(label: str, unit: str, readings: Sequence[Reading]) -> Series | None:
    """Chartable points in one unit, oldest first; implausible values kept apart as outliers."""
    numeric = [r for r in newest_first(readings) if r.number is not None and r.when]
    if not numeric:
        return None
    same = [r for r in numeric if r.unit == unit][:CHART_MAX_POINTS]
    good = [r for r in same if not r.warning]
    if len(good) < 2:
        return None
    points = tuple((r.when, r.number, r.in_encounter) for r in reversed(good))
    outliers = tuple((r.when, r.number) for r in reversed(same) if r.warning)
    return Series(label, unit, points, other_units=len(numeric) - len(same), outliers=outliers)


def make_measure(
    key: str,
    label: str,
    readings: list[Reading],
    now: datetime,
    kind: str,
    *,
    definition: display.MeasureDef | None = None,
    full_name: str = "",
    group: str = "",
    series: tuple[Series, ...] | None = None,
    converted: str = "",
    age: float | None = None,
) -> Measure:
    history = newest_first(readings)
    latest = history[0]
    previous = next((r for r in history[1:] if r.decimal is not None and r.unit == latest.unit), None)
    change = change_since = ""
    if previous is not None and latest.decimal is not None and not latest.value.startswith(("<", ">")):
        change = display.change_text(latest.decimal, previous.decimal, definition, age_years=age)
        change_since = since_text(previous.when, latest.when)
    when = latest.when
    unit = latest.unit
    if series is None:
        series = tuple(s for s in (series_of(label, unit, history),) if s)
    return Measure(
        key,
        label,
        latest,
        tuple(history),
        series,
        full_name=full_name,
        group=group,
        previous=previous,
        change=change,
        age=display.age_text(when.value, now) if when else "",
        stale=bool(when) and display.is_stale(when.value, now, kind),
        converted=converted,
        definition=definition,
        change_since=change_since,
        recent_critical=_recent_critical(history),
        adult=age is None or age >= display.ADULT_YEARS,
        fresh=bool(when) and (now - when.sort_key) < timedelta(days=7),
    )


RECENT_CRITICAL = timedelta(hours=72)


def _recent_critical(history: Sequence[Reading]) -> Reading | None:
    """A critical result in the 72 hours before a latest that is not itself critical: a value
    that came back down (K 6.8 then 5.6) must not make the critical one disappear."""
    latest = history[0]
    if latest.when is None or (latest.flag and latest.flag.level == "critical"):
        return None
    for r in history[1:]:
        if r.when is None or latest.when.sort_key - r.when.sort_key > RECENT_CRITICAL:
            break
        if r.flag and r.flag.level == "critical":
            return r
    return None


def since_text(previous: When | None, latest: When | None) -> str:
    """The previous value's date at a useful grain: "since 26 Nov" within two months, else the month."""
    if previous is None:
        return ""
    value = previous.sort_key.astimezone(timezone.get_default_timezone())
    if latest is not None and (latest.sort_key - previous.sort_key).days < 60:
        return f"since {value.day} {value.strftime('%b')}"
    return f"since {value.strftime('%b %Y')}"
