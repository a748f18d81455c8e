"""How every panel and chart shows a clinical value: the one module they import.

Pure functions on plain values (Decimal, str, datetime): no FHIR models, no request. Settings
are read at call time, so the app's cut-offs follow `settings` (docs/clinical-display.md).
Measures, units, flags and names live in their own modules and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.utils import timezone

from clinical.flags import (
    ADULT_YEARS,
    BMI_ADULT_YEARS,
    Flag,
    Range,
    adult_rules_apply,
    age_in_years,
    bp_flag,
    choose_range,
    implausible,
    implausible_bp,
    lab_flag,
    vital_flag,
)
from clinical.measures import (
    LABS,
    MEASURES,
    VITALS,
    MeasureDef,
    cutoff,
    measure_by_key,
    measure_for,
    normal_band,
)
from clinical.names import clinical_name, encounter_class_name, strip_semantic_tag
from clinical.units import convert, human_unit, plain_number, unit_code

__all__ = [
    "ADULT_YEARS",
    "BMI_ADULT_YEARS",
    "LABS",
    "MEASURES",
    "VITALS",
    "Flag",
    "MeasureDef",
    "Range",
    "Shown",
    "adult_rules_apply",
    "age_in_years",
    "age_text",
    "bp_flag",
    "change_text",
    "choose_range",
    "clinical_name",
    "convert",
    "encounter_class_name",
    "human_unit",
    "implausible",
    "implausible_bp",
    "is_stale",
    "lab_flag",
    "measure_by_key",
    "measure_for",
    "normal_band",
    "show_number",
    "strip_semantic_tag",
    "unit_code",
    "vital_flag",
]


# --- Precision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    text: str  # as displayed: "2.27", "<0.1"
    value: Decimal | None  # the displayed (rounded) number, the one flags compare
    exact: str  # the source's exact value, for title="" and the accessible table


# Decimals when a measure arrives in another unit than its own (and is shown unconverted).
_UNIT_DECIMALS = {
    ("height", "[in_i]"): 1,
    ("weight", "[lb_av]"): 1,
    ("weight", "g"): 0,
    ("temp", "[degF]"): 1,
    ("head", "[in_i]"): 1,
}


def _decimals_for(measure: MeasureDef | None, unit: str, age_years: float | None) -> int | None:
    if measure is None:
        return None
    code = unit_code(unit) if unit else unit_code(measure.unit)
    # Case-insensitive: "mg/dl" is not UCUM but means mg/dL (this only picks the decimals).
    if code.lower() != unit_code(measure.unit).lower():
        return _UNIT_DECIMALS.get((measure.key, code))
    if measure.key == "weight" and age_years is not None and age_years < 2:
        return 3  # to the gram: infant weights change by grams
    return measure.decimals


_STEPS = [Decimal(1).scaleb(-n) for n in range(40)]


def _quantize(value: Decimal, decimals: int) -> Decimal:
    """ROUND_HALF_UP to `decimals`; a wider context only for values the default 28 digits can't hold
    (thousands of calls per page: the context switch is skipped when it is not needed)."""
    step = _STEPS[decimals] if decimals < len(_STEPS) else Decimal(1).scaleb(-decimals)
    if value.adjusted() + decimals + 2 <= 28:
        return value.quantize(step, rounding=ROUND_HALF_UP)
    with localcontext() as ctx:
        ctx.prec = value.adjusted() + decimals + 2
        return value.quantize(step, rounding=ROUND_HALF_UP)


def show_number(
    value: Decimal,
    measure: MeasureDef | None,
    *,
    unit: str = "",
    age_years: float | None = None,
    comparator: str = "",
) -> Shown:
    """`value` at the measure's precision, never with more digits than sent, never rounded to zero."""
    if not value.is_finite():
        return Shown(comparator + str(value), None, comparator + str(value))
    sent = max(0, -value.as_tuple().exponent)  # digits after the point in the source
    decimals = _decimals_for(measure, unit, age_years)
    if decimals is None and value != 0:
        # 3 significant digits, whole part kept, at most 3 decimals; a trace (< 0.01) keeps two
        # significant digits rather than turning 0.0015 into 0.002
        trace = abs(value) < Decimal("0.01")
        decimals = 1 - value.adjusted() if trace else min(max(0, 2 - value.adjusted()), 3)
    decimals = min(decimals or 0, sent)
    rounded = _quantize(value, decimals)
    if rounded == 0 and value != 0:
        # A trace is not zero: keep two significant digits (as far as the source sent them).
        rounded = _quantize(value, min(sent, max(0, 1 - value.adjusted())))
    if rounded == 0:
        rounded = abs(rounded)
    return Shown(comparator + plain_number(rounded), rounded, comparator + plain_number(value))


# --- Time and change -----------------------------------------------------------------------


def _local_date(when: datetime | date) -> date:
    if isinstance(when, datetime):
        if timezone.is_aware(when):
            return timezone.localtime(when, timezone.get_default_timezone()).date()
        return when.date()
    return when


def is_stale(when: datetime | date, now: datetime, kind: str) -> bool:
    """Older than the configured window for its kind ("vital" or "lab")."""
    name = "CLINICAL_STALE_VITALS_DAYS" if kind == "vital" else "CLINICAL_STALE_LABS_DAYS"
    days = int(cutoff(name)[0])
    return (_local_date(now) - _local_date(when)).days > days


def age_text(when: datetime | date, now: datetime) -> str:
    """How long ago, in calendar days of the app's time zone: "today", "3 days ago", "9 months ago"."""
    then, today = _local_date(when), _local_date(now)
    days = (today - then).days
    if days < 0:
        return "in the future"
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    months = (today.year - then.year) * 12 + today.month - then.month - (today.day < then.day)
    if months < 2:
        return f"{days // 7} weeks ago"
    if months < 24:
        return f"{months} months ago"
    return f"{months // 12} years ago"


def change_text(
    latest: Decimal,
    previous: Decimal,
    measure: MeasureDef | None,
    *,
    unit: str = "",
    age_years: float | None = None,
) -> str:
    """The change between the two values as displayed: "↑ 0.35", "↓ 12", "no change"."""
    a = show_number(latest, measure, unit=unit, age_years=age_years).value
    b = show_number(previous, measure, unit=unit, age_years=age_years).value
    if a is None or b is None:
        return ""
    diff = a - b
    if diff == 0:
        return "no change"
    return f"{'↑' if diff > 0 else '↓'} {plain_number(abs(diff))}"
