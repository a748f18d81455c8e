"""What the dashboard shows, built from FHIR queries: no request, no rendering, plain data.

`build_dashboard` runs the independent queries in one parallel wave, each isolated: a failing,
forbidden or unauthorized query only affects its own panel.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from clinical import fhir, scopes
from clinical.parallel import run_parallel

logger = logging.getLogger(__name__)

PANELS = ("banner", "encounter", "vitals", "labs", "problems")
LOINC = "http://loinc.org"
DASH = "\u2013"  # en dash, for ranges and missing BP parts
CHART_MAX_POINTS = 200

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


@dataclass(frozen=True)
class PanelState:
    """How a panel's query went, and how complete its data is."""

    status: str = "ok"  # ok | unauthorized | error | absent
    message: str = ""
    detail: str = ""  # the EHR's OperationOutcome text
    retryable: bool = False
    shown: int = 0
    total: int | None = None
    truncated: bool = False
    truncated_reason: str = ""
    skipped: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def capped(self) -> bool:
        return self.truncated and self.truncated_reason == "capped"


@dataclass(frozen=True)
class Flag:
    level: str  # critical | high | low | abnormal | normal
    label: str
    code: str = ""
    derived: bool = False  # computed from the reference range, not sent by the EHR


@dataclass(frozen=True)
class Reading:
    """One observed value, ready to show: text, unit, time, and a number for charts."""

    when: When | None
    value: str
    unit: str = ""
    number: float | None = None
    in_encounter: bool = False
    status_note: str = ""
    absent: bool = False
    reference_range: str = ""
    flag: Flag | None = None


@dataclass(frozen=True)
class Series:
    label: str
    unit: str
    points: tuple[tuple[When, float, bool], ...]  # (when, value, in current encounter), oldest first
    other_units: int = 0  # readings in another unit, left out of the chart


@dataclass(frozen=True)
class Measure:
    """A vital sign kind or a lab test: latest reading, history (newest first), chart series."""

    key: str
    label: str
    latest: Reading
    history: tuple[Reading, ...]
    series: tuple[Series, ...] = ()


@dataclass(frozen=True)
class Banner:
    state: PanelState
    patient_id: str = ""
    name: str = ""
    gender: str = ""
    birth_date: When | None = None
    age: str = ""
    mrn: str = ""
    deceased: bool = False
    deceased_when: When | None = None


@dataclass(frozen=True)
class EncounterPanel:
    state: PanelState
    encounter_class: str = ""
    types: tuple[str, ...] = ()
    status: str = ""
    start: When | None = None
    end: When | None = None
    locations: tuple[str, ...] = ()
    participants: tuple[tuple[str, str], ...] = ()  # (role, name)
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeasuresPanel:
    state: PanelState
    measures: tuple[Measure, ...] = ()
    missing: tuple[str, ...] = ()  # measures asked for that have no value
    capped: tuple[str, ...] = ()  # measures with more readings than were fetched
    per_measure: int = 0  # readings fetched per measure (the cap `capped` refers to)


@dataclass(frozen=True)
class Problem:
    name: str
    clinical_status: str
    verification: str
    category: str
    onset: str
    onset_when: When | None
    recorded: When | None
    abatement: str
    abatement_when: When | None = None


@dataclass(frozen=True)
class ProblemsPanel:
    state: PanelState
    active: tuple[Problem, ...] = ()
    inactive: tuple[Problem, ...] = ()
    entered_in_error: int = 0


@dataclass(frozen=True)
class Dashboard:
    patient_id: str
    encounter_id: str
    banner: Banner
    encounter: EncounterPanel
    vitals: MeasuresPanel
    labs: MeasuresPanel
    problems: ProblemsPanel
    accesses: tuple[fhir.Access, ...] = ()


@dataclass(frozen=True)
class PatientMatch:
    patient_id: str
    name: str
    gender: str
    birth_date: When | None
    mrn: str


@dataclass(frozen=True)
class PatientSearch:
    state: PanelState
    query: str
    matches: tuple[PatientMatch, ...] = ()
    accesses: tuple[fhir.Access, ...] = ()


# --- Generic FHIR element helpers ------------------------------------------------------------


def concept_text(concept: Any) -> str:
    """Text of a CodeableConcept: its text, else a coding display, else a code."""
    if concept is None:
        return ""
    if getattr(concept, "text", None):
        return concept.text
    for coding in getattr(concept, "coding", None) or []:
        if coding.display:
            return coding.display
    for coding in getattr(concept, "coding", None) or []:
        if coding.code:
            return coding.code
    return ""


def coding_text(coding: Any) -> str:
    if coding is None:
        return ""
    return coding.display or coding.code or ""


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
    text = concept_text(concept)
    return "text:" + text.strip().lower() if text else "unknown"


def reference_id(reference: Any, resource_type: str) -> str:
    """The id in a Reference to `resource_type` (relative or absolute, with or without _history)."""
    ref = getattr(reference, "reference", None) or ""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return ""


def format_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
    else:
        text = str(value)
    return text


_UCUM_DISPLAY = {
    "Cel": "°C",
    "[degF]": "°F",
    "mm[Hg]": "mmHg",
    "kg/m2": "kg/m²",
    "/min": "/min",
    "[lb_av]": "lb",
    "[in_i]": "in",
    "[pH]": "pH",
    "10*3/uL": "×10³/µL",
    "10*6/uL": "×10⁶/µL",
    "10*9/L": "×10⁹/L",
    "10*12/L": "×10¹²/L",
    "ug/dL": "µg/dL",
    "umol/L": "µmol/L",
}


def quantity_unit(quantity: Any) -> str:
    """The unit as a person reads it; EHRs often put the UCUM code (mm[Hg], Cel) in `unit` too."""
    unit = (quantity.unit or "").strip() or (quantity.code or "").strip()
    return _UCUM_DISPLAY.get(unit, "" if unit == "1" else unit)


def _to_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def observation_value(obs: Any) -> tuple[str, str, float | None, bool]:
    """(text, unit, number, absent) for an Observation or component's value[x]."""
    quantity = getattr(obs, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        comparator = quantity.comparator or ""
        number = None if comparator else _to_float(quantity.value)
        return f"{comparator}{format_decimal(quantity.value)}", quantity_unit(quantity), number, False
    if getattr(obs, "valueCodeableConcept", None) is not None:
        return concept_text(obs.valueCodeableConcept) or "(coded value)", "", None, False
    if getattr(obs, "valueString", None):
        return obs.valueString, "", None, False
    if getattr(obs, "valueBoolean", None) is not None:
        return ("Yes" if obs.valueBoolean else "No"), "", None, False
    if getattr(obs, "valueInteger", None) is not None:
        return str(obs.valueInteger), "", float(obs.valueInteger), False
    rng = getattr(obs, "valueRange", None)
    if rng is not None:
        low = f"{format_decimal(rng.low.value)}" if rng.low and rng.low.value is not None else ""
        high = f"{format_decimal(rng.high.value)}" if rng.high and rng.high.value is not None else ""
        unit = quantity_unit(rng.low or rng.high) if (rng.low or rng.high) else ""
        return f"{low}{DASH}{high}", unit, None, False
    ratio = getattr(obs, "valueRatio", None)
    if ratio is not None and ratio.numerator and ratio.denominator:
        return (
            f"{format_decimal(ratio.numerator.value)}/{format_decimal(ratio.denominator.value)}",
            quantity_unit(ratio.numerator),
            None,
            False,
        )
    for attr in ("valueTime", "valueDateTime"):
        if getattr(obs, attr, None) is not None:
            return str(getattr(obs, attr)), "", None, False
    if getattr(obs, "dataAbsentReason", None) is not None:
        return f"No value ({concept_text(obs.dataAbsentReason) or 'reason not given'})", "", None, True
    return "No value recorded", "", None, True


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


_SHOWN_STATUSES = {"final", "amended", "corrected"}
_EXCLUDED_STATUSES = {"entered-in-error", "cancelled"}


def _status_note(obs: Any) -> str:
    status = obs.status or ""
    return "" if status in _SHOWN_STATUSES else status


def _newest_first(readings: list[Reading]) -> list[Reading]:
    dated = sorted((r for r in readings if r.when), key=lambda r: r.when.sort_key, reverse=True)
    return dated + [r for r in readings if not r.when]


def _series(label: str, readings: list[Reading]) -> Series | None:
    """Chartable points in the latest reading's unit (never mix kg with lb on one axis)."""
    numeric = [r for r in _newest_first(readings) if r.number is not None and r.when]
    if len(numeric) < 2:
        return None
    unit = numeric[0].unit
    same = [r for r in numeric if r.unit == unit][:CHART_MAX_POINTS]
    if len(same) < 2:
        return None
    points = tuple((r.when, r.number, r.in_encounter) for r in reversed(same))
    return Series(label, unit, points, other_units=len(numeric) - len([r for r in numeric if r.unit == unit]))


# --- Panels --------------------------------------------------------------------------------

_FLAG_LEVELS = {
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


def interpretation_flag(obs: Any, number: float | None, unit: str) -> Flag | None:
    """The EHR's interpretation (HH/LL/AA critical, H/L, A, N), else one derived from the range."""
    for concept in obs.interpretation or []:
        for code in sorted(codes_of(concept), key=lambda c: -len(c)):
            if code in _FLAG_LEVELS:
                level, label = _FLAG_LEVELS[code]
                return Flag(level, label, code)
        text = concept_text(concept)
        if "critical" in text.lower():
            return Flag("critical", text[:40])
        if text:
            return Flag("abnormal", text[:40])
    if number is None:
        return None
    for rr in obs.referenceRange or []:
        low = rr.low.value if rr.low and rr.low.value is not None else None
        high = rr.high.value if rr.high and rr.high.value is not None else None
        rr_unit = quantity_unit(rr.low or rr.high) if (rr.low or rr.high) else ""
        if rr_unit and unit and rr_unit != unit:
            continue
        if high is not None and number > float(high):
            return Flag("high", "Above reference range", derived=True)
        if low is not None and number < float(low):
            return Flag("low", "Below reference range", derived=True)
        return None
    return None


def reference_range_text(obs: Any) -> str:
    parts = []
    for rr in obs.referenceRange or []:
        if rr.text:
            parts.append(rr.text)
            continue
        low = format_decimal(rr.low.value) if rr.low and rr.low.value is not None else ""
        high = format_decimal(rr.high.value) if rr.high and rr.high.value is not None else ""
        unit = quantity_unit(rr.low or rr.high) if (rr.low or rr.high) else ""
        if low and high:
            text = f"{low}{DASH}{high}"
        elif low:
            text = f"≥ {low}"
        elif high:
            text = f"≤ {high}"
        else:
            continue
        parts.append(f"{text} {unit}".strip())
    return "; ".join(parts)


def _in_encounter(obs: Any, encounter_id: str) -> bool:
    return bool(encounter_id) and reference_id(obs.encounter, "Encounter") == encounter_id


def _reading(obs: Any, encounter_id: str, *, lab: bool = False) -> Reading:
    text, unit, number, absent = observation_value(obs)
    if absent and obs.component:
        parts = []
        for comp in obs.component:
            c_text, c_unit, _n, _a = observation_value(comp)
            parts.append(f"{concept_text(comp.code) or 'component'}: {c_text} {c_unit}".strip())
        text, absent = "; ".join(parts), False
    return Reading(
        when=observation_when(obs),
        value=text,
        unit=unit,
        number=number,
        in_encounter=_in_encounter(obs, encounter_id),
        status_note=_status_note(obs),
        absent=absent,
        reference_range=reference_range_text(obs) if lab else "",
        flag=interpretation_flag(obs, number, unit) if lab else None,
    )


# Vital-sign LOINC codes. Reference: https://hl7.org/fhir/R4/observation-vitalsigns.html
BP_PANEL = {"85354-9", "55284-4"}
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
VITAL_KINDS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("bp", "Blood pressure", frozenset(BP_PANEL)),
    ("hr", "Heart rate", frozenset({"8867-4"})),
    ("rr", "Respiratory rate", frozenset({"9279-1"})),
    ("spo2", "Oxygen saturation", frozenset({"59408-5", "2708-6"})),
    ("temp", "Body temperature", frozenset({"8310-5"})),
    ("weight", "Body weight", frozenset({"29463-7"})),
    ("height", "Body height", frozenset({"8302-2"})),
    ("bmi", "BMI", frozenset({"39156-5"})),
    ("sys", "Systolic blood pressure", frozenset({SYSTOLIC})),
    ("dia", "Diastolic blood pressure", frozenset({DIASTOLIC})),
    ("head", "Head circumference", frozenset({"9843-4"})),
)
# One search per measure; blood pressure as a panel and as separate readings in one search.
VITAL_QUERIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (key, codes | (frozenset({SYSTOLIC, DIASTOLIC}) if key == "bp" else frozenset()))
    for key, _label, codes in VITAL_KINDS
    if key not in ("sys", "dia")
)


def _bp_reading(obs: Any, encounter_id: str) -> tuple[Reading, Reading | None, Reading | None]:
    systolic = diastolic = None
    for comp in obs.component or []:
        codes = codes_of(comp.code, LOINC)
        c_text, c_unit, c_num, c_absent = observation_value(comp)
        part = Reading(
            when=observation_when(obs),
            value=c_text,
            unit=c_unit,
            number=c_num,
            in_encounter=_in_encounter(obs, encounter_id),
            absent=c_absent,
        )
        if SYSTOLIC in codes:
            systolic = part
        elif DIASTOLIC in codes:
            diastolic = part
    sys_text = systolic.value if systolic and not systolic.absent else DASH
    dia_text = diastolic.value if diastolic and not diastolic.absent else DASH
    unit = (systolic.unit if systolic else "") or (diastolic.unit if diastolic else "") or "mmHg"
    combined = Reading(
        when=observation_when(obs),
        value=f"{sys_text}/{dia_text}",
        unit=unit,
        in_encounter=_in_encounter(obs, encounter_id),
        status_note=_status_note(obs),
        absent=systolic is None and diastolic is None,
    )
    return combined, systolic, diastolic


def build_vitals(observations: tuple[Any, ...], encounter_id: str) -> tuple[Measure, ...]:
    by_kind: dict[str, list[Reading]] = {}
    labels: dict[str, str] = {}
    bp_sys: list[Reading] = []
    bp_dia: list[Reading] = []
    for obs in observations:
        if obs.status in _EXCLUDED_STATUSES:
            continue
        codes = codes_of(obs.code, LOINC)
        kind = next((k for k, _label, kc in VITAL_KINDS if codes & kc), None)
        if kind == "bp":
            combined, systolic, diastolic = _bp_reading(obs, encounter_id)
            by_kind.setdefault("bp", []).append(combined)
            if systolic:
                bp_sys.append(systolic)
            if diastolic:
                bp_dia.append(diastolic)
            continue
        reading = _reading(obs, encounter_id)
        if kind is None:
            kind = "other:" + concept_key(obs.code)
            labels.setdefault(kind, concept_text(obs.code) or "Unnamed measurement")
        by_kind.setdefault(kind, []).append(reading)
        if kind == "sys":
            bp_sys.append(reading)
        elif kind == "dia":
            bp_dia.append(reading)
    order = [k for k, _l, _c in VITAL_KINDS] + sorted(k for k in by_kind if k.startswith("other:"))
    names = {k: label for k, label, _c in VITAL_KINDS} | labels
    measures = []
    for kind in order:
        readings = by_kind.get(kind)
        if not readings:
            continue
        history = _newest_first(readings)
        if kind == "bp":
            series = tuple(s for s in (_series("Systolic", bp_sys), _series("Diastolic", bp_dia)) if s)
        elif kind in ("sys", "dia") and "bp" in by_kind:
            series = ()  # already charted with the panel
        else:
            series = tuple(s for s in (_series(names[kind], history),) if s)
        measures.append(Measure(kind, names[kind], history[0], tuple(history), series))
    return tuple(measures)


def build_labs(observations: tuple[Any, ...], encounter_id: str) -> tuple[Measure, ...]:
    groups: dict[str, list[Reading]] = {}
    labels: dict[str, str] = {}
    for obs in observations:
        if obs.status in _EXCLUDED_STATUSES:
            continue
        if obs.hasMember and obs.valueQuantity is None and not obs.component:
            continue  # a panel header (e.g. CBC): its members are listed themselves
        key = concept_key(obs.code)
        labels.setdefault(key, concept_text(obs.code) or "Unnamed test")
        groups.setdefault(key, []).append(_reading(obs, encounter_id, lab=True))
    measures = []
    for key, readings in groups.items():
        history = _newest_first(readings)
        series = tuple(s for s in (_series(labels[key], history),) if s)
        measures.append(Measure(key, labels[key], history[0], tuple(history), series))
    # Most recent first, so today's results lead; flagged ones are marked, not reordered.
    measures.sort(key=lambda m: m.latest.when.sort_key.timestamp() if m.latest.when else 0, reverse=True)
    return tuple(measures)


def _human_name(names: Any) -> str:
    names = names or []
    ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(n.use or "", 2))
    for name in ranked:
        if name.use == "old":
            continue
        given = " ".join(g for g in (name.given or []) if g)
        family = name.family or ""
        if family and given:
            return f"{family}, {given}"
        if family or given:
            return family or given
        if name.text:
            return name.text
    return ""


def _mrn(identifiers: Any) -> str:
    for ident in identifiers or []:
        if ident.value and "MR" in codes_of(ident.type):
            return ident.value
    return ""


def _age(birth: When | None, until: date) -> str:
    if birth is None or birth.precision == "year":
        return "" if birth is None else f"~{until.year - birth.value.year} y"
    born = birth.value if isinstance(birth.value, date) else birth.value.date()
    if isinstance(born, datetime):
        born = born.date()
    months = (until.year - born.year) * 12 + until.month - born.month - (1 if until.day < born.day else 0)
    if months < 0:
        return ""
    if months >= 24:
        return f"{months // 12} y"
    if months >= 1:
        return f"{months} mo"
    return f"{(until - born).days} d"


def build_banner(patient: Any, patient_id: str, today: date) -> Banner:
    if patient.id and patient.id != patient_id:
        # Never the wrong patient: a server answering with another patient's record is an error.
        return Banner(PanelState("error", "The EHR returned a different patient than requested."))
    birth = When.parse(patient.birthDate)
    deceased_when = When.parse(patient.deceasedDateTime)
    deceased = bool(patient.deceasedBoolean) or deceased_when is not None
    until = today
    if deceased_when is not None:
        died = deceased_when.value
        until = died.date() if isinstance(died, datetime) else died
    return Banner(
        PanelState("ok", shown=1),
        patient_id=patient_id,
        name=_human_name(patient.name) or "Name not recorded",
        gender=(patient.gender or "").capitalize() or "Not recorded",
        birth_date=birth,
        age=_age(birth, until),
        mrn=_mrn(patient.identifier),
        deceased=deceased,
        deceased_when=deceased_when,
    )


def build_encounter(encounter: Any, patient_id: str) -> EncounterPanel:
    subject = reference_id(encounter.subject, "Patient")
    if subject and subject != patient_id:
        return EncounterPanel(PanelState("error", "The encounter in context belongs to a different patient."))
    period = encounter.period
    participants = []
    for p in encounter.participant or []:
        role = ", ".join(t for t in (concept_text(t) for t in p.type or []) if t)
        who = (p.individual.display if p.individual else "") or ""
        if who or role:
            participants.append((role or "Participant", who or "Not named"))
    return EncounterPanel(
        PanelState("ok", shown=1),
        encounter_class=coding_text(encounter.class_fhir),
        types=tuple(t for t in (concept_text(t) for t in encounter.type or []) if t),
        status=encounter.status or "",
        start=When.parse(period.start) if period else None,
        end=When.parse(period.end) if period else None,
        locations=tuple(
            loc.location.display for loc in encounter.location or [] if loc.location and loc.location.display
        ),
        participants=tuple(participants),
        reasons=tuple(t for t in (concept_text(c) for c in encounter.reasonCode or []) if t),
    )


_ACTIVE = {"active", "recurrence", "relapse"}


def build_problems(conditions: tuple[Any, ...]) -> tuple[tuple[Problem, ...], tuple[Problem, ...], int]:
    active, inactive, in_error = [], [], 0
    for cond in conditions:
        verification = next(iter(codes_of(cond.verificationStatus)), "")
        if verification == "entered-in-error":
            in_error += 1
            continue
        clinical = next(iter(codes_of(cond.clinicalStatus)), "")
        onset_when = When.parse(cond.onsetDateTime) or (
            When.parse(cond.onsetPeriod.start) if cond.onsetPeriod else None
        )
        onset = ""
        if onset_when is None:
            if cond.onsetAge is not None and cond.onsetAge.value is not None:
                onset = f"age {format_decimal(cond.onsetAge.value)} {quantity_unit(cond.onsetAge)}".strip()
            elif cond.onsetString:
                onset = cond.onsetString
        abatement_when = When.parse(cond.abatementDateTime) or (
            When.parse(cond.abatementPeriod.start) if cond.abatementPeriod else None
        )
        abatement = cond.abatementString or ""
        problem = Problem(
            name=concept_text(cond.code) or "Unnamed condition",
            clinical_status=clinical or "not recorded",
            verification=verification or "not recorded",
            category=", ".join(t for t in (concept_text(c) for c in cond.category or []) if t),
            onset=onset,
            onset_when=onset_when,
            recorded=When.parse(cond.recordedDate),
            abatement=abatement,
            abatement_when=abatement_when,
        )
        # refuted means "not present": never list it among the active problems.
        if (clinical in _ACTIVE or not clinical) and verification != "refuted":
            active.append(problem)
        else:
            inactive.append(problem)

    def newest(p: Problem) -> tuple[float, str]:
        when = p.onset_when or p.recorded
        return (-(when.sort_key.timestamp()) if when else 0.0, p.name.lower())

    return tuple(sorted(active, key=newest)), tuple(sorted(inactive, key=newest)), in_error


# --- Queries and the parallel wave -----------------------------------------------------------


def only_patient(result: fhir.SearchResult, patient_id: str) -> fhir.SearchResult:
    """Never another patient's data: drop entries whose subject names a different patient.

    A server that ignores a search parameter it does not support returns everyone's entries;
    the patient filter is checked here again rather than trusted.
    """
    kept = tuple(
        r
        for r in result.resources
        if reference_id(getattr(r, "subject", None), "Patient") in ("", patient_id)
    )
    dropped = result.count - len(kept)
    if not dropped:
        return result
    logger.warning("dropped %d search entries that belong to another patient", dropped)
    note = f"{dropped} entries for another patient were returned by the EHR and are not shown."
    return replace(result, resources=kept, warnings=(*result.warnings, note))


UNSORTED_NOTE = "the EHR did not return them newest first, so some recent results may be missing"


def _sorted_newest_first(observations: Sequence[Any]) -> bool:
    """Did the server honour `_sort=-date`? Many ignore it, and then a capped page is not the latest."""
    stamps = [when.sort_key.timestamp() for when in map(observation_effective, observations) if when]
    return all(earlier >= later for earlier, later in itertools.pairwise(stamps))


def _measures_state(result: fhir.SearchResult) -> PanelState:
    state = _state_from_result(result, result.count)
    if state.capped and not _sorted_newest_first(result.resources):
        return replace(state, truncated_reason=UNSORTED_NOTE)
    return state


def _state_from_result(result: fhir.SearchResult, shown: int) -> PanelState:
    return PanelState(
        "ok",
        shown=shown,
        total=result.total,
        truncated=result.truncated,
        truncated_reason=result.truncated_reason,
        skipped=result.skipped,
        warnings=result.warnings,
    )


def error_state(exc: Exception, what: str) -> PanelState:
    """A panel's failure, said plainly, with the EHR's own words when it gave any."""
    if isinstance(exc, fhir.Forbidden):
        message = f"Not authorized: the EHR refused access to {what}."
        return PanelState("unauthorized", message, exc.diagnostics)
    if isinstance(exc, fhir.Unauthorized):
        return PanelState(
            "unauthorized",
            "The EHR no longer accepts this session's access. Open the app again from the EHR.",
            exc.diagnostics,
        )
    if isinstance(exc, fhir.NotFound):
        return PanelState("error", f"The EHR has no record of {what}.", exc.diagnostics)
    if isinstance(exc, fhir.RateLimited):
        wait = f" Try again in {exc.retry_after} s." if exc.retry_after else ""
        return PanelState("error", f"The EHR is busy and did not send {what}.{wait}", exc.diagnostics, True)
    if isinstance(exc, fhir.Timeout):
        return PanelState("error", f"The EHR did not send {what} in time.", "", True)
    if isinstance(exc, fhir.FhirError):
        return PanelState("error", f"Could not load {what}: {exc.message}.", exc.diagnostics, exc.retryable)
    return PanelState("error", f"Could not display {what}.", "", True)


def _not_authorized(scope: str) -> PanelState:
    return PanelState("unauthorized", f"Not authorized: {scope} not granted.")


def _category_params(patient_id: str, category: str) -> dict[str, str]:
    return {"patient": patient_id, "category": category, "_sort": "-date"}


def code_param(codes: Collection[str]) -> str:
    """A token search for any of `codes` (LOINC), comma meaning OR."""
    return ",".join(f"{LOINC}|{code}" for code in sorted(codes))


@dataclass(frozen=True)
class Query:
    """One FHIR interaction of the dashboard's wave: a read (`resource_id`) or a search."""

    name: str  # "banner", "vitals:hr", ...; the part before ":" is the panel it feeds
    resource_type: str
    resource_id: str = ""
    params: tuple[tuple[str, str], ...] = ()
    max_entries: int | None = None  # None: the client's cap; otherwise one page of this size

    @property
    def panel(self) -> str:
        return self.name.split(":", 1)[0]


def plan_queries(patient_id: str, encounter_id: str = "", panels: Collection[str] = PANELS) -> list[Query]:
    """The interactions a dashboard makes, slowest first (they leave one after another).

    Vital signs are asked for per measure (newest first, one small page each), so a rare measure
    (a weight among thousands of home blood pressures) is never pushed out of a capped page; one
    more page of the category catches vital signs of codes the app does not know.
    """
    queries: list[Query] = []
    if "vitals" in panels:
        count = settings.FHIR_MEASURE_COUNT
        for key, codes in VITAL_QUERIES:
            params = {**_category_params(patient_id, "vital-signs"), "code": code_param(codes)}
            query = Query(f"vitals:{key}", "Observation", params=tuple(params.items()), max_entries=count)
            queries.append(query)
        params = _category_params(patient_id, "vital-signs")
        queries.append(Query("vitals:*", "Observation", params=tuple(params.items()), max_entries=count))
    if "labs" in panels:
        params = _category_params(patient_id, "laboratory")
        queries.append(Query("labs", "Observation", params=tuple(params.items())))
    if "problems" in panels:
        # Condition has no `date` search parameter, so no _sort: sorted here instead.
        queries.append(Query("problems", "Condition", params=(("patient", patient_id),)))
    if "encounter" in panels and encounter_id:
        queries.append(Query("encounter", "Encounter", encounter_id))
    if "banner" in panels:
        queries.append(Query("banner", "Patient", patient_id))
    return queries


_WHAT = {
    "banner": "the patient's details",
    "encounter": "the encounter",
    "vitals": "vital signs",
    "labs": "lab results",
    "problems": "the problem list",
}


def build_vitals_panel(results: dict[str, Any], encounter_id: str) -> MeasuresPanel:
    """One panel from the per-measure searches: each failure is its own, named in the panel.

    The searches overlap (the category page holds some of each measure), so entries are kept
    once by id; a server that ignores `code` is harmless for the same reason.
    """
    ok = {k: v for k, v in results.items() if isinstance(v, fhir.SearchResult)}
    failed = {k: v for k, v in results.items() if not isinstance(v, fhir.SearchResult)}
    if not ok:
        first = next(iter(failed.values()), None)
        if isinstance(first, PanelState):
            return MeasuresPanel(first)
        return MeasuresPanel(error_state(first, _WHAT["vitals"]) if first else PanelState("absent"))
    seen: set[str] = set()
    observations: list[Any] = []
    warnings: list[str] = []
    skipped = 0
    for result in ok.values():
        skipped += result.skipped
        warnings.extend(w for w in result.warnings if w not in warnings)
        for obs in result.resources:
            key = obs.id or f"#{id(obs)}"
            if key not in seen:
                seen.add(key)
                observations.append(obs)
    names = {k: label for k, label, _codes in VITAL_KINDS}
    unsorted = [k for k, r in ok.items() if r.truncated and not _sorted_newest_first(r.resources)]
    if unsorted:
        warnings.append(f"Vital signs: {UNSORTED_NOTE}.")
    for key, exc in failed.items():
        measure = key.split(":", 1)[1]
        label = names.get(measure, "other vital signs")
        state = exc if isinstance(exc, PanelState) else error_state(exc, label.lower())
        warnings.append(f"{label}: {state.message}")
    measures = build_vitals(tuple(observations), encounter_id)
    present = {m.key for m in measures}
    missing = tuple(
        names[k] for k, _codes in VITAL_QUERIES if k not in present and k not in ("head",)
        and f"vitals:{k}" in ok and not (k == "bp" and present & {"sys", "dia"})
    )
    capped = tuple(
        names[k]
        for k, _codes in VITAL_QUERIES
        if k in present and (r := ok.get(f"vitals:{k}")) is not None and r.truncated
    )
    state = PanelState("ok", shown=len(observations), skipped=skipped, warnings=tuple(warnings))
    return MeasuresPanel(
        state,
        measures,
        missing=missing,
        capped=capped,
        per_measure=settings.FHIR_MEASURE_COUNT,
    )


def build_dashboard(
    client: fhir.FhirClient,
    patient_id: str,
    encounter_id: str | None = None,
    granted_scopes: Collection[str] | None = None,
    *,
    panels: Collection[str] = PANELS,
    levels: tuple[str, ...] = ("patient", "user"),
    today: date | None = None,
    max_workers: int | None = None,
) -> Dashboard:
    """Query and assemble the requested panels for one patient, in one parallel wave.

    `levels` are the scope levels that may authorize the queries: patient/ and user/ for the
    launch's own patient, only user/ for a patient found by search.
    """
    encounter_id = encounter_id or ""
    today = today or timezone.localdate()
    tasks: dict[str, Callable[[], Any]] = {}
    outcome: dict[str, Any] = {}

    for query in plan_queries(patient_id, encounter_id, panels):
        rtype = query.resource_type
        if query.resource_id:
            if not scopes.check(granted_scopes, rtype, "read", levels=levels).allowed:
                outcome[query.name] = _not_authorized(scopes.describe(rtype, levels))
                continue
            tasks[query.name] = lambda q=query: client.read(q.resource_type, q.resource_id)
            continue
        params = dict(query.params)
        grant = scopes.check(granted_scopes, rtype, "search", levels=levels, params=params)
        if not grant.allowed:
            outcome[query.name] = _not_authorized(scopes.describe(rtype, levels))
            continue
        search = {**params, **dict(grant.restrictions)}
        if query.max_entries:
            search["_count"] = str(query.max_entries)
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p, max_pages=1, max_entries=q.max_entries), patient_id
            )
        else:
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p), patient_id
            )

    outcome.update(run_parallel(tasks, max_workers or settings.FHIR_MAX_WORKERS))

    def built(name: str, make: Callable[[Any], Any]) -> Any:
        value = outcome.get(name)
        if value is None or isinstance(value, PanelState):
            return value
        if isinstance(value, Exception):
            return error_state(value, _WHAT[name])
        return make(value)

    def problems(r: fhir.SearchResult) -> ProblemsPanel:
        active, inactive, in_error = build_problems(r.resources)
        return ProblemsPanel(_state_from_result(r, r.count), active, inactive, in_error)

    def labs(r: fhir.SearchResult) -> MeasuresPanel:
        return MeasuresPanel(_measures_state(r), build_labs(r.resources, encounter_id))

    def panel(value: Any, cls: type) -> Any:
        if value is None:
            return cls(PanelState("absent"))
        return cls(value) if isinstance(value, PanelState) else value

    vitals_results = {k: v for k, v in outcome.items() if k.startswith("vitals:")}
    return Dashboard(
        patient_id=patient_id,
        encounter_id=encounter_id,
        banner=panel(built("banner", lambda p: build_banner(p, patient_id, today)), Banner),
        encounter=panel(built("encounter", lambda e: build_encounter(e, patient_id)), EncounterPanel),
        vitals=build_vitals_panel(vitals_results, encounter_id) if vitals_results else MeasuresPanel(
            PanelState("absent")
        ),
        labs=panel(built("labs", labs), MeasuresPanel),
        problems=panel(built("problems", problems), ProblemsPanel),
        accesses=tuple(client.accesses),
    )


def search_patients(
    client: fhir.FhirClient, query: str, granted_scopes: Collection[str] | None, limit: int = 20
) -> PatientSearch:
    """Search this launch's EHR for patients by name (user-level launches without a patient)."""
    params = {"name": query}
    grant = scopes.check(granted_scopes, "Patient", "search", levels=("user",), params=params)
    if not grant.allowed:
        return PatientSearch(_not_authorized("user/Patient.rs"), query)
    try:
        query_params = {**params, **dict(grant.restrictions)}  # a granular grant narrows the search
        result = client.search("Patient", query_params, max_pages=1, max_entries=limit)
    except fhir.FhirError as exc:
        return PatientSearch(error_state(exc, "patients"), query, accesses=tuple(client.accesses))
    matches = tuple(
        PatientMatch(
            patient_id=p.id,
            name=_human_name(p.name) or "Name not recorded",
            gender=(p.gender or "").capitalize() or "Not recorded",
            birth_date=When.parse(p.birthDate),
            mrn=_mrn(p.identifier),
        )
        for p in result.resources
        if p.id
    )
    return PatientSearch(_state_from_result(result, len(matches)), query, matches, tuple(client.accesses))
