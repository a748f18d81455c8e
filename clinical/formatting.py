"""Unambiguous display of FHIR dates ("12 Mar 2024 14:05"), keeping the precision the EHR sent."""

from __future__ import annotations

import functools
from datetime import date, datetime, tzinfo

from django.utils import timezone

from clinical.readings import When


def format_when(when: When | None, empty: str = "Date not recorded") -> str:
    """Day-month-name-year avoids the 03/12 vs 12/03 ambiguity; times are in the app's time zone."""
    if when is None:
        return empty
    # The app shows one configured zone (settings.TIME_ZONE, never per-request activate()); the
    # zone is part of the key, so a changed setting (tests) never reads an old text.
    return _formatted(when.value, when.precision, timezone.get_default_timezone())


@functools.lru_cache(maxsize=4096)
def _formatted(value: datetime | date, precision: str, zone: tzinfo) -> str:
    """Remembered: a dashboard formats the same few hundred times in its rows, charts and titles."""
    if precision == "year":
        return f"{value.year}"
    if precision == "month":
        return value.strftime("%b %Y")
    if precision == "day" or not isinstance(value, datetime):
        return f"{value.day} {value.strftime('%b %Y')}"
    local = value.astimezone(zone)
    return f"{local.day} {local.strftime('%b %Y %H:%M')}"


def format_date_only(when: When | None, empty: str = "Date not recorded") -> str:
    """A date at its own precision ("2004", "Mar 2004", "12 Mar 2004"), never a clock time.

    For problems (onset, recorded, abatement): a time of day there is noise. A dateTime is
    taken as its date in the app's time zone.
    """
    if when is None:
        return empty
    value = when.value
    if when.precision in ("year", "month", "day") or not isinstance(value, datetime):
        return format_when(when, empty)
    local = value.astimezone(timezone.get_default_timezone())
    return f"{local.day} {local.strftime('%b %Y')}"


def zone_label(now: datetime | None = None) -> str:
    """The configured TIME_ZONE's abbreviation now ("UTC", "CET", "EST"), shown once per page.

    Zones without a letter abbreviation (tzdata gives "+03") read as "UTC+03".
    """
    moment = now or timezone.now()
    name = moment.astimezone(timezone.get_default_timezone()).tzname() or ""
    return f"UTC{name}" if name[:1] in ("+", "-") else name


def iso(when: When | None) -> str:
    """Machine-readable value for a <time datetime> attribute."""
    if when is None:
        return ""
    if when.precision == "year":
        return f"{when.value.year:04d}"
    if when.precision == "month":
        return f"{when.value.year:04d}-{when.value.month:02d}"
    if when.precision == "day":
        return when.value.isoformat()[:10]
    return when.sort_key.isoformat()


def format_recent(when: When | None, empty: str = "Date not recorded") -> str:
    """A time within the last days, compact: "26 Nov 19:25" (the year is this one, said elsewhere)."""
    if when is None:
        return empty
    if when.precision != "minute" or not isinstance(when.value, datetime):
        return format_when(when, empty)
    local = when.value.astimezone(timezone.get_default_timezone())
    return f"{local.day} {local.strftime('%b %H:%M')}"
