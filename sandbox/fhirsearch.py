"""FHIR R4 search over the Resource table: parameters, date prefixes, sorting, paging.

Reference: https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet

SUPPORTED_TYPES = ("Patient", "Practitioner", "Encounter", "Observation", "Condition", "DiagnosticReport")
DEFAULT_COUNT = 50
MAX_COUNT = 1000


class SearchError(ValueError):
    """A search the client got wrong: answered with 400 and an OperationOutcome."""


_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_fhir_date(value: str) -> tuple[datetime, datetime]:
    """The [start, end) interval a FHIR date/dateTime/instant denotes, at its precision."""
    m = _DATE.match(value.strip())
    if not m:
        raise SearchError(f"invalid date: {value!r}")
    y, mo, d, hh, mi, ss, tz = m.groups()
    try:
        if mo is None:
            start = datetime(int(y), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if d is None:
            start = datetime(int(y), int(mo), 1, tzinfo=UTC)
            end = (
                start.replace(year=start.year + 1, month=1)
                if start.month == 12
                else start.replace(month=start.month + 1)
            )
            return start, end
        if hh is None:
            start = datetime(int(y), int(mo), int(d), tzinfo=UTC)
            return start, start + timedelta(days=1)
        tzinfo = UTC
        start = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss or 0))
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
            start = start - sign * offset
        start = start.replace(tzinfo=tzinfo)
        return start, start + (timedelta(seconds=1) if ss else timedelta(minutes=1))
    except ValueError as e:
        raise SearchError(f"invalid date: {value!r}") from e


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def date_q(raw: str, column: str = "date") -> Q:
    """One date parameter value with an optional prefix (eq ne lt gt le ge sa eb ap)."""
    prefix = raw[:2] if raw[:2] in ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap") else "eq"
    value = raw[2:] if raw[:2] == prefix else raw
    start, end = parse_fhir_date(value)
    if prefix == "ap":
        slack = max((end - start) * 0.1, timedelta(days=1))
        start, end, prefix = start - slack, end + slack, "eq"
    s, e = _iso(start), _iso(end)
    in_range = Q(**{f"{column}__gte": s, f"{column}__lt": e})
    return {
        "eq": in_range,
        "ne": Q(**{f"{column}__isnull": False}) & ~in_range,
        "lt": Q(**{f"{column}__lt": s}),
        "eb": Q(**{f"{column}__lt": s}),
        "le": Q(**{f"{column}__lt": e}),
        "gt": Q(**{f"{column}__gte": e}),
        "sa": Q(**{f"{column}__gte": e}),
        "ge": Q(**{f"{column}__gte": s}),
    }[prefix]


def token_q(raw: str, column: str) -> Q:
    """A token parameter (`system|code`, `code`, `system|`, `|code`), comma = OR."""
    q = Q()
    for value in raw.split(","):
        if not value:
            raise SearchError("empty token value")
        if "|" in value:
            system, code = value.split("|", 1)
            needle = f" {system}|{code} " if code else f" {system}|"
            if not system:
                needle = f" |{code} "
        else:
            needle = f"|{value} "
        q |= Q(**{f"{column}__contains": needle})
    return q


def reference_id(raw: str, rtype: str) -> str:
    """`123`, `Patient/123` or an absolute URL ending in Patient/123 -> `123`."""
    value = raw.rstrip("/")
    marker = f"{rtype}/"
    if marker in value:
        value = value.rsplit(marker, 1)[1]
    elif "/" in value:
        raise SearchError(f"reference must point to a {rtype}: {raw!r}")
    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
        raise SearchError(f"invalid id: {raw!r}")
    return value


def _multi_id(raw: str, rtype: str) -> list[str]:
    return [reference_id(v, rtype) for v in raw.split(",")]


# Parameters per type: name -> kind. Anything else is ignored (FHIR lenient handling) unless
# the client sends `Prefer: handling=strict`.
PARAMS: dict[str, dict[str, str]] = {
    "Patient": {"_id": "id", "name": "text", "family": "text", "given": "text", "gender": "status"},
    "Practitioner": {"_id": "id", "name": "text", "family": "text", "given": "text"},
    "Encounter": {
        "_id": "id",
        "patient": "patient",
        "subject": "patient",
        "date": "date",
        "status": "status",
        "class": "category",
        "type": "code",
    },
    "Observation": {
        "_id": "id",
        "patient": "patient",
        "subject": "patient",
        "encounter": "encounter",
        "category": "category",
        "code": "code",
        "date": "date",
        "status": "status",
    },
    "Condition": {
        "_id": "id",
        "patient": "patient",
        "subject": "patient",
        "encounter": "encounter",
        "category": "category",
        "code": "code",
        "clinical-status": "clinical_status",
        "verification-status": "status",
        "onset-date": "date",
    },
    # Reference: https://hl7.org/fhir/us/core/StructureDefinition-us-core-diagnosticreport-lab.html
    "DiagnosticReport": {
        "_id": "id",
        "patient": "patient",
        "subject": "patient",
        "encounter": "encounter",
        "category": "category",
        "code": "code",
        "date": "date",
        "status": "status",
    },
}
RESULT_PARAMS = {"_count", "_sort", "_offset", "_format", "_total", "_summary", "_elements"}
SORTS = {"date": "date", "_id": "rid", "_lastUpdated": "last_updated"}


def apply_params(
    qs: QuerySet, rtype: str, params: list[tuple[str, str]], strict: bool
) -> tuple[QuerySet, list[tuple[str, str]]]:
    """Filter `qs` by the search parameters; returns it and the parameters actually used."""
    known = PARAMS[rtype]
    used: list[tuple[str, str]] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base in RESULT_PARAMS:
            continue
        kind = known.get(base)
        if kind is None or (
            modifier and not (kind in ("patient", "encounter") and modifier == base.capitalize())
        ):
            if strict:
                raise SearchError(f"unsupported search parameter: {name}")
            continue
        if value == "":
            raise SearchError(f"empty value for {name}")
        if kind == "id":
            qs = qs.filter(rid__in=[reference_id(v, rtype) for v in value.split(",")])
        elif kind == "patient":
            qs = qs.filter(patient_id__in=_multi_id(value, "Patient"))
        elif kind == "encounter":
            qs = qs.filter(encounter_id__in=_multi_id(value, "Encounter"))
        elif kind == "date":
            qs = qs.filter(date_q(value))
        elif kind in ("code", "category"):
            qs = qs.filter(token_q(value, "codes" if kind == "code" else "categories"))
        elif kind == "clinical_status":
            qs = qs.filter(clinical_status__in=[v.rpartition("|")[2] for v in value.split(",")])
        elif kind == "status":
            qs = qs.filter(status__in=[v.rpartition("|")[2] for v in value.split(",")])
        elif kind == "text":
            q = Q()
            for v in value.split(","):
                q |= Q(text__contains=v.lower())
            qs = qs.filter(q)
        used.append((name, value))
    return qs, used


def apply_sort(qs: QuerySet, raw: str | None) -> QuerySet:
    if not raw:
        return qs.order_by("id")
    order = []
    for key in raw.split(","):
        desc = key.startswith("-")
        column = SORTS.get(key.lstrip("-"))
        if column is None:
            raise SearchError(f"unsupported _sort: {key}")
        order.append(("-" if desc else "") + column)
    return qs.order_by(*order, "id")


def parse_int(raw: str | None, name: str, default: int, low: int, high: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise SearchError(f"{name} must be a non-negative integer")
    value = int(raw)
    if value < low:
        raise SearchError(f"{name} must be at least {low}")
    return min(value, high) if high is not None else value
