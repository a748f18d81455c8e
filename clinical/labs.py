"""Lab results from Observations: one measure per test (by code), ranges chosen for the patient,
cancelled results kept as open items, groups in a fixed clinical order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.utils import timezone

from clinical import display
from clinical.formatting import format_when
from clinical.measure import make_measure
from clinical.reading_cache import remembered
from clinical.readings import (
    EXCLUDED_STATUSES,
    LOINC,
    Measure,
    Person,
    Reading,
    When,
    as_float,
    codes_of,
    concept_full,
    concept_key,
    concept_text,
    in_encounter,
    interpretations_of,
    looks_numeric,
    observation_when,
    range_text,
    ranges_of,
    shown_value,
    status_note,
)

# --- Labs ------------------------------------------------------------------------------------


def _cancel_reason(obs: Any) -> str:
    """Why a result was cancelled, in the sender's words where given (a note, a reason)."""
    for note in obs.note or []:
        if getattr(note, "text", None):
            return note.text.strip()[:160]
    if obs.dataAbsentReason is not None:
        return concept_text(obs.dataAbsentReason) or "no reason given"
    return "no reason given"


def lab_key(obs: Any) -> str:
    """The measure an Observation belongs to: a known test by its LOINC codes, else its code."""
    measure = display.measure_for(codes_of(obs.code, LOINC))
    return measure.key if measure is not None else concept_key(obs.code)


LAB_GROUP_ORDER = (
    "Kidney",
    "Electrolytes",
    "Chemistry",
    "Diabetes",
    "Lipids",
    "Hematology",
    "Liver",
    "Thyroid",
    "Urinalysis",
    "Other",
)


def _lab_reading(obs: Any, measure: display.MeasureDef | None, encounter_id: str, person: Person) -> Reading:
    when = observation_when(obs)
    age = person.age_at(when)
    value, text, absent = shown_value(obs, measure, age)
    ranges = ranges_of(obs)
    chosen = display.choose_range(ranges, age_years=age, sex=person.sex)
    flag = display.lab_flag(
        value.number,
        interpretation=interpretations_of(obs),
        ranges=ranges,
        unit=value.code,
        age_years=age,
        sex=person.sex,
        comparator=value.comparator,
    )
    warning = (
        display.implausible(measure, value.raw, value.code) if measure and value.raw is not None else None
    )
    return Reading(
        when=when,
        value=text,
        unit=value.unit,
        unitless=value.code == "1" and not value.unit,
        number=as_float(value.number) if not value.comparator else None,
        in_encounter=in_encounter(obs, encounter_id),
        status_note=status_note(obs),
        absent=absent,
        reference_range=range_text(chosen, measure) or ("; ".join(r.text for r in ranges if r.text)),
        flag=flag,
        exact=value.exact,
        warning=warning or "",
        decimal=value.raw,
        no_range=flag is None and not ranges and not absent,
        # A number beside a range the app could not apply (sent only as text, another unit):
        # said in the flag cell, since a blank there reads as normal.
        unjudged=flag is None and bool(ranges) and not absent and looks_numeric(text),
    )


def build_labs(
    observations: Sequence[Any], encounter_id: str, person: Person | None = None, now: datetime | None = None
) -> tuple[Measure, ...]:
    person = person or Person()
    now = now or timezone.now()
    groups: dict[str, list[Reading]] = {}
    names: dict[str, tuple[str, str]] = {}
    definitions: dict[str, display.MeasureDef | None] = {}
    cancelled: dict[str, list[tuple[When | None, str]]] = {}
    for obs in observations:
        if obs.status == "cancelled":
            key = lab_key(obs)
            cancelled.setdefault(key, []).append((observation_when(obs), _cancel_reason(obs)))
            continue
        if obs.status in EXCLUDED_STATUSES:
            continue
        if obs.hasMember and obs.valueQuantity is None and not obs.component:
            continue  # a panel header (e.g. CBC): its members are listed themselves
        measure = display.measure_for(codes_of(obs.code, LOINC))
        key = measure.key if measure is not None else concept_key(obs.code)
        if key not in names:
            short, full = concept_full(obs.code)
            names[key] = (measure.name if measure else (short or "Unnamed test"), full)
            definitions[key] = measure
        context = ("lab", key, encounter_id, person)
        reading = remembered(obs, context, _lab_reading, measure, encounter_id, person)
        groups.setdefault(key, []).append(reading)
    age_now = person.age_at(When.parse(now))
    measures = []
    for key, readings in groups.items():
        definition = definitions[key]
        label, full = names[key]
        measure = make_measure(
                key,
                label,
                readings,
                now,
                "lab",
                definition=definition,
                full_name=full,
                group=definition.group if definition else "Other",
                age=age_now,
        )
        latest_when = measure.latest.when
        newer = sorted(
            (
                (when, reason)
                for when, reason in cancelled.get(key, [])
                if when is not None and (latest_when is None or when.sort_key > latest_when.sort_key)
            ),
            reverse=True,
        )
        if newer:
            # When matters: after a critical potassium, how long has there been no valid result?
            when, reason = newer[0]
            text = f"A newer result ({format_when(when)}) was cancelled: {reason}"
            measure = replace(measure, open_item=text)
        measures.append(measure)
    # Most recent first within a group, so today's results lead; flagged ones are marked.
    measures.sort(key=lambda m: m.latest.when.sort_key.timestamp() if m.latest.when else 0, reverse=True)
    return tuple(measures)


_LAB_ORDER = {m.key: i for i, m in enumerate(display.LABS)}


def lab_groups(measures: Sequence[Measure]) -> list[tuple[str, list[Measure]]]:
    """Labs by group in a fixed clinical order (Kidney first). Within a group, known tests keep
    the table's order (creatinine beside eGFR, sodium before potassium), so a clinician finds
    them in the same place every time; unknown tests follow, newest first."""
    by_group: dict[str, list[Measure]] = {}
    for m in measures:
        by_group.setdefault(m.group or "Other", []).append(m)
    for members in by_group.values():
        members.sort(key=lambda m: _LAB_ORDER.get(m.key, len(_LAB_ORDER)))  # stable: newest first kept
    order = {g: i for i, g in enumerate(LAB_GROUP_ORDER)}
    return sorted(by_group.items(), key=lambda item: order.get(item[0], len(order)))


