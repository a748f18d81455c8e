"""The banner (who the patient is) and the encounter in context, from Patient and Encounter."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from clinical import display
from clinical.panels import Banner, EncounterPanel, PanelState
from clinical.readings import When, codes_of, concept_text, reference_id


def human_name(names: Any) -> str:
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


def mrn(identifiers: Any) -> str:
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
        name=human_name(patient.name) or "Name not recorded",
        gender=(patient.gender or "").capitalize() or "Not recorded",
        birth_date=birth,
        age=_age(birth, until),
        mrn=mrn(patient.identifier),
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
        encounter_class=display.encounter_class_name(
            encounter.class_fhir.system, encounter.class_fhir.code, encounter.class_fhir.display
        )
        if encounter.class_fhir
        else "",
        class_code=(encounter.class_fhir.code or "").upper() if encounter.class_fhir else "",
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
