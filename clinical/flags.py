"""Flags in a fixed order of authority: the sender's interpretation, the sender's reference range
(chosen for the patient's age and sex), and only for vital signs the app's own cut-offs.

Every comparison uses the value as displayed, so a flag always agrees with the number on screen.
The app's cut-offs are conventions, configurable in settings: docs/clinical-display.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from clinical.measures import MeasureDef, cutoff, measure_by_key
from clinical.units import convert, human_unit, plain_number, unit_code

ADULT_YEARS = 18
BMI_ADULT_YEARS = 20  # CDC: BMI-for-age percentiles, not adult categories, up to 19 years


@dataclass(frozen=True)
class Range:
    low: Decimal | None
    high: Decimal | None
    unit: str  # UCUM code
    text: str
    applies_to: frozenset[str] = frozenset()  # lower-cased codes: type (normal) and appliesTo
    age_low: Decimal | None = None  # years
    age_high: Decimal | None = None


@dataclass(frozen=True)
class Flag:
    level: str  # critical | high | low | abnormal | normal
    label: str
    source: str  # sender (interpretation) | range (sender's reference range) | app (app cut-offs)
    code: str = ""


_MALE = {"male", "m", "248153007"}
_FEMALE = {"female", "f", "248152002"}
_NORMAL_TYPES = {"normal", "n"}  # referenceRange.type; absent means normal (FHIR R4)
_OTHER_TYPES = {"recommended", "treatment", "therapeutic"}  # ranked after normal ranges
_AGE_UNITS = {
    "a": Decimal(1),
    "mo": Decimal(1) / 12,
    "wk": Decimal(7) / Decimal("365.25"),
    "d": 1 / Decimal("365.25"),
    "h": 1 / (Decimal("365.25") * 24),
    "min": 1 / (Decimal("365.25") * 24 * 60),
}


def age_in_years(value: Decimal | None, unit: str | None) -> Decimal | None:
    """An Age (referenceRange.age, onsetAge) in years; None for a unit that is not a time unit."""
    if value is None:
        return None
    factor = _AGE_UNITS.get(unit_code(unit) or "a")
    return None if factor is None else value * factor


def _applies(rng: Range, age_years: float | None, sex: str) -> bool:
    sex = (sex or "").lower()
    codes = rng.applies_to
    if codes & _MALE and sex not in _MALE:
        return False
    if codes & _FEMALE and sex not in _FEMALE:
        return False
    # A population we cannot check (pregnancy, a race code): not this patient's range.
    if codes - _MALE - _FEMALE - _NORMAL_TYPES - _OTHER_TYPES:
        return False
    if rng.age_low is None and rng.age_high is None:
        return True
    if age_years is None:
        return False
    age = Decimal(str(age_years))
    if rng.age_low is not None and age < rng.age_low:
        return False
    if rng.age_high is not None:
        # "0-17 a" means up to the 18th birthday: whole-year bounds compare completed years.
        compared = Decimal(math.floor(age)) if rng.age_high == rng.age_high.to_integral_value() else age
        if compared > rng.age_high:
            return False
    return True


def choose_range(ranges: Sequence[Range], *, age_years: float | None, sex: str) -> Range | None:
    """The range for this patient at the measurement: normal-type first, then the most specific."""
    candidates = [(i, r) for i, r in enumerate(ranges) if _applies(r, age_years, sex)]
    if not candidates:
        return None

    def rank(item: tuple[int, Range]) -> tuple[int, int, int]:
        i, r = item
        other_type = 1 if r.applies_to & _OTHER_TYPES else 0
        specific = bool(r.applies_to & (_MALE | _FEMALE)) + (r.age_low is not None or r.age_high is not None)
        return (other_type, -specific, i)

    return min(candidates, key=rank)[1]


# Reference: https://terminology.hl7.org/CodeSystem-v3-ObservationInterpretation.html
_INTERPRETATIONS = {
    "HH": ("critical", "Critical high"),
    "LL": ("critical", "Critical low"),
    "AA": ("critical", "Critical abnormal"),
    "H": ("high", "High"),
    "HU": ("high", "Significantly high"),
    ">": ("high", "Above measurable range"),
    "L": ("low", "Low"),
    "LU": ("low", "Significantly low"),
    "<": ("low", "Below measurable range"),
    "A": ("abnormal", "Abnormal"),
    "N": ("normal", "Normal"),
}
_SEVERITY = {"critical": 3, "high": 2, "low": 2, "abnormal": 1, "normal": 0}


def _sender_flag(interpretation: Sequence[tuple[str, str]]) -> Flag | None:
    best: Flag | None = None
    for code, text in interpretation:
        code, text = (code or "").strip(), (text or "").strip()
        if code in _INTERPRETATIONS:
            level, label = _INTERPRETATIONS[code]
        elif text or code:
            level, label = "abnormal", text or code
        else:
            continue
        if "critical" in text.lower():
            level, label = "critical", text[:40]
        flag = Flag(level, label, "sender", code)
        if best is None or _SEVERITY[level] > _SEVERITY[best.level]:
            best = flag
    return best


def lab_flag(
    shown: Decimal | None,
    *,
    interpretation: Sequence[tuple[str, str]],
    ranges: Sequence[Range],
    unit: str,
    age_years: float | None,
    sex: str,
    comparator: str = "",
) -> Flag | None:
    """The sender's interpretation, else the chosen range against the displayed value, else None.

    A value within the range gets a "normal" flag (source "range"); None means nothing to judge
    by (no interpretation, no applicable numeric range in a comparable unit).
    """
    sender = _sender_flag(interpretation)
    if sender is not None:
        return sender
    if shown is None:
        return None
    rng = choose_range(ranges, age_years=age_years, sex=sex)
    if rng is None or (rng.low is None and rng.high is None):
        return None
    low, high = rng.low, rng.high
    if rng.unit and unit and unit_code(rng.unit) != unit_code(unit):
        low = convert(low, rng.unit, unit) if low is not None else None
        high = convert(high, rng.unit, unit) if high is not None else None
        if (rng.low is not None and low is None) or (rng.high is not None and high is None):
            return None  # units that do not convert: no comparison rather than a wrong one
    below = Flag("low", "Below range", "range")
    above = Flag("high", "Above range", "range")
    within = Flag("normal", "Within range", "range")
    if comparator in ("<", "<="):  # the true value is at most `shown`
        if low is not None and shown <= low:
            return below
        return within if low is None and high is not None and shown <= high else None
    if comparator in (">", ">="):  # the true value is at least `shown`
        if high is not None and shown >= high:
            return above
        return within if high is None and low is not None and shown >= low else None
    if high is not None and shown > high:
        return above
    if low is not None and shown < low:
        return below
    return within


def adult_rules_apply(age_years: float | None) -> bool:
    """The app's adult cut-offs apply from 18; an unknown age is treated as adult (and labelled)."""
    return age_years is None or age_years >= ADULT_YEARS


def vital_flag(
    measure: MeasureDef, shown: Decimal, *, age_years: float | None, unit: str = ""
) -> Flag | None:
    """The app's own cut-off crossed by this displayed value (adults only); None otherwise.

    `unit` is the displayed value's unit when it is not the measure's (°F is compared in °C).
    """
    if not adult_rules_apply(age_years):
        return None
    if unit and unit_code(unit) != unit_code(measure.unit):
        converted = convert(shown, unit, measure.unit)
        if converted is None:
            return None
        shown = converted
    key = measure.key
    if key in ("hr", "rr"):
        low, high = cutoff("CLINICAL_HR_RANGE" if key == "hr" else "CLINICAL_RR_RANGE")
        if shown < low:
            return Flag("low", "Low", "app")
        if shown > high:
            return Flag("high", "High", "app")
        return None
    if key == "spo2":
        return Flag("low", "Low", "app") if shown < cutoff("CLINICAL_SPO2_LOW")[0] else None
    if key == "temp":
        if shown >= cutoff("CLINICAL_FEVER_C")[0]:
            return Flag("high", "Fever", "app")
        if shown < cutoff("CLINICAL_HYPOTHERMIA_C")[0]:
            return Flag("low", "Low", "app")
        return None
    if key == "sys":
        return bp_flag(shown, None, age_years=age_years)
    if key == "dia":
        return bp_flag(None, shown, age_years=age_years)
    return None  # weight, height, head circumference; BMI: no categories (docs/clinical-display.md)


def bp_flag(systolic: Decimal | None, diastolic: Decimal | None, *, age_years: float | None) -> Flag | None:
    """One reading against the app's cut-offs. A single reading is never staged (ACC/AHA stages
    need averaged readings); "Very high" is level critical so that it outranks "High"."""
    if not adult_rules_apply(age_years) or (systolic is None and diastolic is None):
        return None
    very_sys, very_dia = cutoff("CLINICAL_BP_VERY_HIGH")
    high_sys, high_dia = cutoff("CLINICAL_BP_HIGH")
    if (systolic is not None and systolic > very_sys) or (diastolic is not None and diastolic > very_dia):
        return Flag("critical", "Very high", "app")
    if (systolic is not None and systolic >= high_sys) or (diastolic is not None and diastolic >= high_dia):
        return Flag("high", "High", "app")
    if systolic is not None and systolic < cutoff("CLINICAL_SYSTOLIC_LOW")[0]:
        return Flag("low", "Low", "app")
    if systolic is not None and diastolic is not None:
        mean_arterial = (systolic + 2 * diastolic) / 3
        if mean_arterial < cutoff("CLINICAL_MAP_LOW")[0]:
            return Flag("low", "Low (MAP)", "app")
    return None


# Physiological limits for data-quality warnings: narrow and obvious on purpose (measure unit).
_LIMITS: dict[str, tuple[Decimal | None, bool, Decimal | None, str]] = {
    # key: (low limit, is the low limit itself possible?, high limit, what to say)
    "spo2": (Decimal(0), True, Decimal(100), "SpO₂ {side} is not possible: check the device"),
    "weight": (Decimal(0), False, None, "A weight of {value} is not possible: check the entry"),
    "height": (Decimal(0), False, None, "A height of {value} is not possible: check the entry"),
    "head": (Decimal(0), False, None, "A head circumference of {value} is not possible: check the entry"),
    "bmi": (Decimal(0), False, None, "A BMI of {value} is not possible: check weight and height"),
    "hr": (Decimal(0), False, Decimal(300), "A heart rate of {value} is not possible: check the device"),
    "rr": (Decimal(0), False, Decimal(100), "A respiratory rate of {value} is not possible: check the entry"),
    "temp": (Decimal(25), True, Decimal(45), "A temperature of {value} is not possible: check the device"),
    "sys": (
        Decimal(0),
        False,
        Decimal(300),
        "A systolic pressure of {value} is not possible: check the entry",
    ),
    "dia": (
        Decimal(0),
        False,
        Decimal(300),
        "A diastolic pressure of {value} is not possible: check the entry",
    ),
    "egfr": (Decimal(0), True, None, "A negative eGFR is not possible: check the result"),
}


def implausible(measure: MeasureDef | None, value: Decimal, unit: str) -> str | None:
    """A data-quality warning for a value outside physiological limits, else None."""
    if measure is None or measure.key not in _LIMITS:
        return None
    converted = convert(value, unit or measure.unit, measure.unit)
    if converted is None:
        return None
    low, low_possible, high, message = _LIMITS[measure.key]
    too_low = low is not None and (converted < low if low_possible else converted <= low)
    too_high = high is not None and converted > high
    if not (too_low or too_high):
        return None
    shown_unit = human_unit(unit or measure.unit)
    side = f"above {high} {shown_unit}" if too_high else f"below {low} {shown_unit}"
    return message.format(side=side, value=f"{plain_number(value)} {shown_unit}".strip())


def implausible_bp(systolic: Decimal | None, diastolic: Decimal | None) -> str | None:
    """A reading whose systolic is not above its diastolic (or either value is impossible)."""
    for key, value in (("sys", systolic), ("dia", diastolic)):
        if value is not None and (warning := implausible(measure_by_key(key), value, "mm[Hg]")):
            return warning
    if systolic is not None and diastolic is not None and systolic <= diastolic:
        sys_text, dia_text = plain_number(systolic), plain_number(diastolic)
        return f"A systolic {sys_text} at or below the diastolic {dia_text} is not possible: check the entry"
    return None
