"""Vital signs from Observations: one measure per kind, blood pressure joined from panels and
from separate systolic and diastolic readings, the sender's flag first, else the app's cut-offs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from clinical import display
from clinical.measure import make_measure, newest_first
from clinical.reading_cache import remembered
from clinical.readings import (
    CHART_MAX_POINTS,
    DASH,
    EXCLUDED_STATUSES,
    LOINC,
    Flag,
    Measure,
    Person,
    Reading,
    Series,
    Value,
    When,
    as_float,
    codes_of,
    concept_full,
    concept_key,
    in_encounter,
    interpretations_of,
    observation_value,
    observation_when,
    quantity_unit,
    ranges_of,
    shown_value,
    status_note,
)

# --- Vital signs -----------------------------------------------------------------------------


SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
O2_FLOW, O2_CONCENTRATION = "3151-8", "3150-0"


def _vital_flag(
    obs: Any, measure: display.MeasureDef, value: Value, age: float | None, person: Person
) -> tuple[Flag | None, str]:
    """(flag, data-quality warning) for one vital sign: the sender's word first, else the app's."""
    if value.number is None:
        return None, ""
    warning = display.implausible(measure, value.raw, value.code) or ""
    if warning:
        return None, warning
    sender = interpretations_of(obs)
    if sender or obs.referenceRange:
        flag = display.lab_flag(
            value.number,
            interpretation=sender,
            ranges=ranges_of(obs),
            unit=value.code,
            age_years=age,
            sex=person.sex,
            comparator=value.comparator,
        )
        if flag is not None:
            return (flag if flag.level != "normal" else None), ""
    return display.vital_flag(measure, value.number, age_years=age, unit=value.code), ""


def _oxygen(obs: Any, age: float | None) -> str:
    parts = []
    for comp in obs.component or []:
        codes = codes_of(comp.code, LOINC)
        if codes & {O2_FLOW, O2_CONCENTRATION}:
            v = observation_value(comp, None, age)
            label = "O₂ flow" if O2_FLOW in codes else "O₂"
            parts.append(f"{label} {v.text} {v.unit}".strip())
    return ", ".join(parts)


def _vital_reading(obs: Any, measure: display.MeasureDef, encounter_id: str, person: Person) -> Reading:
    when = observation_when(obs)
    age = person.age_at(when)
    value = observation_value(obs, measure, age)
    flag, warning = _vital_flag(obs, measure, value, age, person)
    return Reading(
        when=when,
        value=value.text,
        unit=value.unit,
        unitless=value.code == "1" and not value.unit,
        number=as_float(value.number) if not value.comparator else None,
        in_encounter=in_encounter(obs, encounter_id),
        status_note=status_note(obs),
        absent=value.absent,
        flag=flag,
        exact=value.exact,
        warning=warning,
        decimal=value.raw,
        components=_oxygen(obs, age) if measure.key == "spo2" else "",
    )


def _bp_parts(obs: Any, age: float | None) -> tuple[Value | None, Value | None]:
    systolic = diastolic = None
    for comp in obs.component or []:
        codes = codes_of(comp.code, LOINC)
        if SYSTOLIC in codes:
            systolic = observation_value(comp, display.measure_by_key("sys"), age)
        elif DIASTOLIC in codes:
            diastolic = observation_value(comp, display.measure_by_key("dia"), age)
    return systolic, diastolic


def _bp_reading(
    when: When | None,
    systolic: Value | None,
    diastolic: Value | None,
    obs: Any,
    encounter_id: str,
    person: Person,
) -> Reading:
    age = person.age_at(when)
    sys_n = systolic.number if systolic and not systolic.absent else None
    dia_n = diastolic.number if diastolic and not diastolic.absent else None
    warning = (
        display.implausible_bp(systolic.raw if systolic else None, diastolic.raw if diastolic else None) or ""
    )
    flag = None
    if not warning:
        sender = interpretations_of(obs)
        flag = display.lab_flag(
            None, interpretation=sender, ranges=[], unit="", age_years=age, sex=person.sex
        )
        if flag is None or flag.level == "normal":
            flag = display.bp_flag(sys_n, dia_n, age_years=age)
    sys_text = systolic.text if systolic and not systolic.absent else DASH
    dia_text = diastolic.text if diastolic and not diastolic.absent else DASH
    exact_parts = [v.exact for v in (systolic, diastolic) if v is not None and v.exact]
    return Reading(
        when=when,
        value=f"{sys_text}/{dia_text}",
        unit="mmHg",
        number=as_float(sys_n),
        in_encounter=in_encounter(obs, encounter_id),
        status_note=status_note(obs),
        absent=systolic is None and diastolic is None,
        flag=flag,
        exact=" / ".join(exact_parts),
        warning=warning,
        decimal=systolic.raw if systolic else None,
    )


def _bp_panel_reading(obs: Any, encounter_id: str, person: Person) -> Reading:
    """A blood-pressure panel (85354-9) read from its systolic and diastolic components."""
    when = observation_when(obs)
    systolic, diastolic = _bp_parts(obs, person.age_at(when))
    return _bp_reading(when, systolic, diastolic, obs, encounter_id, person)


def _join_separate_bp(
    systolic: list[tuple[Any, Value, When | None]],
    diastolic: list[tuple[Any, Value, When | None]],
    encounter_id: str,
    person: Person,
) -> list[Reading]:
    """Separate systolic and diastolic Observations, paired by their time (as EHRs send them)."""
    by_time: dict[Any, list[Any]] = {}
    for obs, value, when in systolic:
        by_time.setdefault(when.sort_key if when else id(obs), [None, None, obs, when])[0] = value
    for obs, value, when in diastolic:
        entry = by_time.setdefault(when.sort_key if when else id(obs), [None, None, obs, when])
        entry[1] = value
    return [_bp_reading(when, s, d, obs, encounter_id, person) for s, d, obs, when in by_time.values()]


def build_vitals(
    observations: Sequence[Any], encounter_id: str, person: Person | None = None, now: datetime | None = None
) -> tuple[Measure, ...]:
    person = person or Person()
    now = now or timezone.now()
    by_key: dict[str, list[Reading]] = {}
    labels: dict[str, tuple[str, str]] = {}
    units: dict[str, set[str]] = {}
    separate_sys: list[tuple[Any, Value, When | None]] = []
    separate_dia: list[tuple[Any, Value, When | None]] = []
    for obs in observations:
        if obs.status in EXCLUDED_STATUSES:
            continue
        codes = codes_of(obs.code, LOINC)
        measure = display.measure_for(codes)
        if measure is not None and measure.key == "bp":
            reading = remembered(obs, ("bp", encounter_id, person), _bp_panel_reading, encounter_id, person)
            by_key.setdefault("bp", []).append(reading)
            continue
        if measure is not None and measure.key in ("sys", "dia"):
            when = observation_when(obs)
            value = observation_value(obs, measure, person.age_at(when))
            (separate_sys if measure.key == "sys" else separate_dia).append((obs, value, when))
            continue
        if measure is None or measure.kind != "vital":
            key = "other:" + concept_key(obs.code)
            labels.setdefault(key, concept_full(obs.code))
            reading = remembered(obs, ("other", encounter_id), _other_reading, encounter_id)
        else:
            key = measure.key
            context = ("vital", key, encounter_id, person)
            reading = remembered(obs, context, _vital_reading, measure, encounter_id, person)
            quantity = getattr(obs, "valueQuantity", None)
            if quantity is not None:
                units.setdefault(key, set()).add(quantity_unit(quantity))
        by_key.setdefault(key, []).append(reading)
    if separate_sys or separate_dia:
        by_key.setdefault("bp", []).extend(
            _join_separate_bp(separate_sys, separate_dia, encounter_id, person)
        )
    order = [m.key for m in display.VITALS] + sorted(k for k in by_key if k.startswith("other:"))
    age_now = person.age_at(When.parse(now))
    measures = []
    for key in order:
        readings = by_key.get(key)
        if not readings:
            continue
        definition = display.measure_by_key(key)
        if definition is not None:
            label, full = definition.name, ""
        else:
            label, full = labels[key]
            label = label or "Unnamed measurement"
        series = None
        if key == "bp":
            series = _bp_series(readings)
        sent_units = units.get(key, set())
        converted = ""
        if definition is not None and len(sent_units) > 1:
            shown_unit = display.human_unit(definition.unit)
            others = sorted(u for u in sent_units if u and u != shown_unit)
            if others:
                converted = f"{', '.join(others)} converted to {shown_unit}"
        measures.append(
            make_measure(
                key,
                label,
                readings,
                now,
                "vital",
                definition=definition,
                full_name=full,
                series=series,
                converted=converted,
                age=age_now,
            )
        )
    return tuple(measures)


def _bp_series(readings: list[Reading]) -> tuple[Series, ...]:
    systolic, diastolic, outliers = [], [], []
    for r in newest_first(readings)[:CHART_MAX_POINTS]:
        if r.when is None or r.absent:
            continue
        parts = r.value.split("/")
        try:
            s, d = (float(p) if p and p != DASH and not p.startswith(("<", ">")) else None for p in parts[:2])
        except (ValueError, TypeError):
            continue
        if r.warning:
            outliers.extend((r.when, v) for v in (s, d) if v is not None)
            continue
        if s is not None:
            systolic.append((r.when, s, r.in_encounter))
        if d is not None:
            diastolic.append((r.when, d, r.in_encounter))
    result = []
    for label, points in (("Systolic", systolic), ("Diastolic", diastolic)):
        if len(points) >= 2:
            result.append(Series(label, "mmHg", tuple(reversed(points)), outliers=tuple(reversed(outliers))))
    return tuple(result)


def _other_reading(obs: Any, encounter_id: str) -> Reading:
    value, text, absent = shown_value(obs)
    return Reading(
        when=observation_when(obs),
        value=text,
        unit=value.unit,
        unitless=value.code == "1" and not value.unit,
        number=as_float(value.number) if not value.comparator else None,
        in_encounter=in_encounter(obs, encounter_id),
        status_note=status_note(obs),
        absent=absent,
        exact=value.exact,
        decimal=value.raw,
    )


