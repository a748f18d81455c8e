"""Observations turned into what a clinician reads: readings, measures, series and their flags.

Every number, unit, name and flag comes from `clinical.display`, so a panel, a chart and the
abnormal-results strip always agree. Measures are keyed by code, never by a name that looks
alike: eGFR in mL/min/1.73 m² and creatinine clearance in mL/min stay apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from clinical import display

LOINC = "http://loinc.org"
DASH = "\u2013"  # en dash, for ranges and missing BP parts
CHART_MAX_POINTS = 200
EXCLUDED_STATUSES = {"entered-in-error", "cancelled"}


# --- Small value types -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class When:
    """A FHIR date/dateTime with its precision (year, month, day or minute), sortable."""

    sort_key: datetime
    precision: str = field(compare=False)
    value: datetime | date = field(compare=False)

    @classmethod
    def parse(cls, raw: Any) -> When | None:
        if raw is None:
            return None
        if isinstance(raw, datetime):
            aware = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
            return cls(aware.astimezone(UTC), "minute", aware)
        if isinstance(raw, date):
            return cls(datetime(raw.year, raw.month, raw.day, tzinfo=UTC), "day", raw)
        if isinstance(raw, str):
            text = raw.strip()
            try:
                if re.fullmatch(r"\d{4}", text):
                    d = date(int(text), 1, 1)
                    return cls(datetime(d.year, 1, 1, tzinfo=UTC), "year", d)
                if re.fullmatch(r"\d{4}-\d{2}", text):
                    d = date(int(text[:4]), int(text[5:7]), 1)
                    return cls(datetime(d.year, d.month, 1, tzinfo=UTC), "month", d)
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                    return cls.parse(date.fromisoformat(text))
                return cls.parse(datetime.fromisoformat(text.replace("Z", "+00:00")))
            except ValueError:
                return None
        return None


Flag = display.Flag


@dataclass(frozen=True)
class Reading:
    """One observed value, ready to show: text as displayed, unit, time, and a number for charts."""

    when: When | None
    value: str
    unit: str = ""
    number: float | None = None  # the displayed value (in the measure's unit), for charts
    in_encounter: bool = False
    status_note: str = ""
    absent: bool = False
    reference_range: str = ""
    flag: Flag | None = None
    exact: str = ""  # the sender's exact value and unit, when the display rounded or converted it
    warning: str = ""  # a data-quality warning (a value outside physiological limits)
    decimal: Decimal | None = None  # the unrounded value in the measure's unit (for the change)
    no_range: bool = False  # a lab value with nothing to judge it by: no interpretation, no range
    unjudged: bool = False  # a lab number beside a range the app could not apply (text only)
    components: str = ""  # extra components worth showing (oxygen flow beside SpO₂)
    unitless: bool = False  # sent as a score or count ({score}, 1): no unit to show, none missing


@dataclass(frozen=True)
class Series:
    label: str
    unit: str
    points: tuple[tuple[When, float, bool], ...]  # (when, value, in current encounter), oldest first
    other_units: int = 0  # readings in a unit that does not convert, left out of the chart
    outliers: tuple[tuple[When, float], ...] = ()  # implausible values, drawn marked


@dataclass(frozen=True)
class Measure:
    """A vital sign kind or a lab test: latest reading, history (newest first), chart series."""

    key: str
    label: str
    latest: Reading
    history: tuple[Reading, ...]
    series: tuple[Series, ...] = ()
    full_name: str = ""  # the sender's long name, for hover
    group: str = ""  # labs: Kidney, Hematology, ...
    previous: Reading | None = None
    change: str = ""  # "↑ 0.35" between the previous and the latest displayed values
    age: str = ""  # "9 months ago"
    stale: bool = False  # older than the configured window: never shown as current
    converted: str = ""  # "lb converted to kg" when a series arrived in several units
    definition: display.MeasureDef | None = None
    change_since: str = ""  # when the previous value was taken ("since Dec 2025"): a change needs its span
    recent_critical: Reading | None = None  # a critical result shortly before a latest that is not
    open_item: str = ""  # a newer result was cancelled ("recollection requested"): still owed
    adult: bool = True  # the adult normal band applies to the charts
    fresh: bool = False  # within the last week: shown with its date and time, not "3 days ago"

    @property
    def flagged(self) -> bool:
        flag = self.latest.flag
        return (
            bool(flag and flag.level != "normal")
            or bool(self.latest.warning)
            or self.recent_critical is not None
            or bool(self.open_item)
        )

    @property
    def severity(self) -> int:
        """0 critical (now or within the last hours), 1 abnormal, 2 data-quality or open item only."""
        if self.recent_critical is not None or (self.latest.flag and self.latest.flag.level == "critical"):
            return 0
        if self.latest.flag and self.latest.flag.level != "normal":
            return 1
        return 2


@dataclass(frozen=True)
class Person:
    """What the flags need of the patient: age at a time, and sex."""

    birth: date | None = None
    sex: str = ""

    @classmethod
    def of(cls, patient: Any) -> Person:
        """From a Patient resource (birthDate at any precision, administrative gender)."""
        birth = When.parse(getattr(patient, "birthDate", None))
        born = birth.value if birth else None
        if isinstance(born, datetime):
            born = born.date()
        return cls(born, (getattr(patient, "gender", None) or "").lower())

    def is_young_child(self, today: date | None = None) -> bool:
        """Under 3: head circumference is a vital sign worth asking for."""
        if self.birth is None:
            return False
        return ((today or timezone.localdate()) - self.birth).days < 3 * 365

    def age_at(self, when: When | None) -> float | None:
        if self.birth is None or when is None:
            return None
        moment = when.sort_key.date()
        return max((moment - self.birth).days / 365.25, 0.0)


# --- Generic FHIR element helpers ------------------------------------------------------------


def concept_text(concept: Any) -> str:
    """Text of a CodeableConcept: its text, else a coding display (semantic tag removed), else a code."""
    if concept is None:
        return ""
    short, _full = display.clinical_name(getattr(concept, "text", None), codings_of(concept))
    return short


def concept_full(concept: Any) -> tuple[str, str]:
    if concept is None:
        return "", ""
    return display.clinical_name(getattr(concept, "text", None), codings_of(concept))


def codings_of(concept: Any) -> list[tuple[str | None, str | None, str | None]]:
    return [(c.system, c.code, c.display) for c in (getattr(concept, "coding", None) or [])]


def codes_of(concept: Any, system: str | None = None) -> set[str]:
    return {
        c.code
        for c in (getattr(concept, "coding", None) or [])
        if c.code and (system is None or c.system in (system, None))
    }


def concept_key(concept: Any) -> str:
    """A grouping key: LOINC code first, then any system|code, then the lower-cased text."""
    codings = getattr(concept, "coding", None) or []
    for coding in codings:
        if coding.system == LOINC and coding.code:
            return f"{LOINC}|{coding.code}"
    for coding in codings:
        if coding.code:
            return f"{coding.system or ''}|{coding.code}"
    text = (getattr(concept, "text", None) or "").strip()
    return "text:" + text.lower() if text else "unknown"


def reference_id(reference: Any, resource_type: str) -> str:
    """The id in a Reference to `resource_type` (relative or absolute, with or without _history)."""
    ref = getattr(reference, "reference", None) or ""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return ""


def to_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else str(value))
        )
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def quantity_code(quantity: Any) -> str:
    return display.unit_code(getattr(quantity, "code", None), getattr(quantity, "unit", None))


def quantity_unit(quantity: Any) -> str:
    """The unit as a person reads it; EHRs often put the UCUM code (mm[Hg], Cel) in `unit` too."""
    return display.human_unit(getattr(quantity, "code", None), getattr(quantity, "unit", None))


def format_decimal(value: Any) -> str:
    number = to_decimal(value)
    return display.show_number(number, None).text if number is not None else str(value)


def observation_effective(obs: Any) -> When | None:
    """effective[x]: what `_sort=date` orders by."""
    if obs.effectiveDateTime is not None:
        return When.parse(obs.effectiveDateTime)
    if obs.effectivePeriod is not None and obs.effectivePeriod.start is not None:
        return When.parse(obs.effectivePeriod.start)
    if obs.effectiveInstant is not None:
        return When.parse(obs.effectiveInstant)
    return None


def observation_when(obs: Any) -> When | None:
    return observation_effective(obs) or When.parse(obs.issued)


def status_note(obs: Any) -> str:
    status = obs.status or ""
    return "" if status == "final" else status


def in_encounter(obs: Any, encounter_id: str) -> bool:
    return bool(encounter_id) and reference_id(obs.encounter, "Encounter") == encounter_id


# --- Values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    text: str
    unit: str  # human unit
    number: Decimal | None  # displayed value (measure unit)
    raw: Decimal | None  # unrounded value (measure unit)
    exact: str
    code: str  # UCUM code of `number`
    comparator: str = ""
    absent: bool = False
    converted_from: str = ""


def _quantity_value(quantity: Any, measure: display.MeasureDef | None, age: float | None) -> Value | None:
    raw = to_decimal(quantity.value)
    if raw is None:
        return None
    code = quantity_code(quantity)
    comparator = quantity.comparator or ""
    exact = f"{comparator}{display.plain_number(raw)} {quantity_unit(quantity)}".strip()
    converted_from = ""
    if measure is not None and code and display.unit_code(measure.unit) != code:
        converted = display.convert(raw, code, measure.unit)
        if converted is not None:
            raw, converted_from, code = converted, code, display.unit_code(measure.unit)
    shown = display.show_number(raw, measure, unit=code, age_years=age, comparator=comparator)
    unit = display.human_unit(code) if converted_from else quantity_unit(quantity)
    if not converted_from and shown.exact == shown.text:
        exact = ""
    return Value(shown.text, unit, shown.value, raw, exact, code, comparator, False, converted_from)


def observation_value(
    obs: Any, measure: display.MeasureDef | None = None, age: float | None = None
) -> Value:
    """The value[x] of an Observation or a component, as displayed."""
    quantity = getattr(obs, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        value = _quantity_value(quantity, measure, age)
        if value is not None:
            return value
    if getattr(obs, "valueCodeableConcept", None) is not None:
        return Value(concept_text(obs.valueCodeableConcept) or "(coded value)", "", None, None, "", "")
    if getattr(obs, "valueString", None):
        return Value(obs.valueString, "", None, None, "", "")
    if getattr(obs, "valueBoolean", None) is not None:
        return Value("Yes" if obs.valueBoolean else "No", "", None, None, "", "")
    if getattr(obs, "valueInteger", None) is not None:
        number = Decimal(obs.valueInteger)
        return Value(str(obs.valueInteger), "", number, number, "", "")
    rng = getattr(obs, "valueRange", None)
    if rng is not None:
        low = format_decimal(rng.low.value) if rng.low and rng.low.value is not None else ""
        high = format_decimal(rng.high.value) if rng.high and rng.high.value is not None else ""
        unit = quantity_unit(rng.low or rng.high) if (rng.low or rng.high) else ""
        return Value(f"{low}{DASH}{high}", unit, None, None, "", "")
    ratio = getattr(obs, "valueRatio", None)
    if ratio is not None and ratio.numerator and ratio.denominator:
        text = f"{format_decimal(ratio.numerator.value)}/{format_decimal(ratio.denominator.value)}"
        return Value(text, quantity_unit(ratio.numerator), None, None, "", "")
    for attr in ("valueTime", "valueDateTime"):
        if getattr(obs, attr, None) is not None:
            return Value(str(getattr(obs, attr)), "", None, None, "", "")
    if getattr(obs, "dataAbsentReason", None) is not None:
        reason = concept_text(obs.dataAbsentReason) or "reason not given"
        return Value(f"No value ({reason})", "", None, None, "", "", absent=True)
    return Value("No value recorded", "", None, None, "", "", absent=True)


_NUMERIC_TEXT = re.compile(r"\s*(<=|>=|[<>≤≥])?\s*[-+]?(\d+([.,]\d*)?|[.,]\d+)\s*")


def looks_numeric(text: str) -> bool:
    """A value sent as a string that is a number ("<0.1", "12.5"): it still needs its unit said."""
    return bool(_NUMERIC_TEXT.fullmatch(text or ""))


def shown_value(
    obs: Any, measure: display.MeasureDef | None = None, age: float | None = None
) -> tuple[Value, str, bool]:
    """(Value, text, absent): the value[x]; a panel with no value of its own (a blood gas, a
    urinalysis sent as components) reads as its components, "pH: 7.31; pCO2: 52 mmHg"."""
    value = observation_value(obs, measure, age)
    if not (value.absent and obs.component):
        return value, value.text, value.absent
    parts = []
    for comp in obs.component:
        c = observation_value(comp)
        parts.append(f"{concept_text(comp.code) or 'component'}: {c.text} {c.unit}".strip())
    return value, "; ".join(parts), False


def as_float(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


# --- Reference ranges and flags -------------------------------------------------------------


def ranges_of(obs: Any) -> list[display.Range]:
    ranges = []
    for rr in obs.referenceRange or []:
        quantity = rr.low or rr.high
        applies = set()
        for concept in [rr.type, *(rr.appliesTo or [])]:
            applies |= {c.lower() for c in codes_of(concept)}
            if concept is not None and getattr(concept, "text", None) and not codes_of(concept):
                applies.add(concept.text.strip().lower())
        age_low = age_high = None
        if rr.age is not None:
            if rr.age.low is not None:
                age_low = display.age_in_years(to_decimal(rr.age.low.value), quantity_code(rr.age.low))
            if rr.age.high is not None:
                age_high = display.age_in_years(to_decimal(rr.age.high.value), quantity_code(rr.age.high))
        ranges.append(
            display.Range(
                low=to_decimal(rr.low.value) if rr.low else None,
                high=to_decimal(rr.high.value) if rr.high else None,
                unit=quantity_code(quantity) if quantity else "",
                text=(rr.text or "").strip(),
                applies_to=frozenset(applies),
                age_low=age_low,
                age_high=age_high,
            )
        )
    return ranges


def range_text(rng: display.Range | None, measure: display.MeasureDef | None = None) -> str:
    if rng is None:
        return ""
    if rng.text and rng.low is None and rng.high is None:
        return rng.text
    low = display.show_number(rng.low, None).text if rng.low is not None else ""
    high = display.show_number(rng.high, None).text if rng.high is not None else ""
    unit = display.human_unit(rng.unit)
    if low and high:
        text = f"{low}{DASH}{high}"
    elif low:
        text = f"≥ {low}"
    elif high:
        text = f"≤ {high}"
    else:
        return rng.text
    return f"{text} {unit}".strip()


def interpretations_of(obs: Any) -> list[tuple[str, str]]:
    found = []
    for concept in obs.interpretation or []:
        codes = sorted(codes_of(concept), key=lambda c: -len(c))
        text = (concept.text or "").strip() or next(
            (c.display for c in (concept.coding or []) if c.display), ""
        )
        found.append((codes[0] if codes else "", text))
    return found
