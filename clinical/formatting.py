"""Unambiguous display of FHIR dates ("12 Mar 2024 14:05"), keeping the precision the EHR sent."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from clinical.readings import When


def format_when(when: When | None, empty: str = "Date not recorded") -> str:
    """Day-month-name-year avoids the 03/12 vs 12/03 ambiguity; times are in the app's time zone."""
    if when is None:
        return empty
    value = when.value
    if when.precision == "year":
        return f"{value.year}"
    if when.precision == "month":
        return value.strftime("%b %Y")
    if when.precision == "day" or not isinstance(value, datetime):
        return f"{value.day} {value.strftime('%b %Y')}"
    # The app shows one configured zone (settings.TIME_ZONE, never per-request activate()), and
    # the default zone is cached: this runs hundreds of times per dashboard.
    local = value.astimezone(timezone.get_default_timezone())
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
