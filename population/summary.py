"""From exported resources to one summary row per patient, upserted idempotently.

Resources arrive one at a time (streamed NDJSON); only a small accumulator per patient is kept.
Codes and units follow the dashboard's rules (`clinical.display`: `measure_for`, `convert`,
the BP cut-off), so the population page and the dashboard agree on what a reading is.
Applying the same resource twice changes nothing (latest-by-date, sets of problem ids), so a
run that is repeated or restarted writes no duplicate rows and no double counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from clinical import display
from population.models import PatientSummary, SyncRun
from smartapp.models import Ehr

LOINC = "http://loinc.org"
USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}
ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
NOT_A_PROBLEM = {"entered-in-error", "refuted"}
NOT_SEEN = {"planned", "cancelled", "entered-in-error"}
CHUNK = 500


def parse_when(value: Any) -> datetime | None:
    """A FHIR date/dateTime as an aware datetime (a partial date at its start); None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if len(text) == 4 and text.isdigit():
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        f"{c.get('system', '')}|{c.get('code', '')}"
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == LOINC and c.get("code")
    ]


def _quantity(holder: dict, target_unit: str) -> Decimal | None:
    quantity = holder.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("comparator"):
        return None
    value = _decimal(quantity.get("value"))
    if value is None:
        return None
    unit = quantity.get("code") or quantity.get("unit") or target_unit
    return display.convert(value, str(unit), target_unit)


def _ref_id(reference: Any) -> str:
    value = reference.get("reference", "") if isinstance(reference, dict) else ""
    return value.removeprefix("Patient/") if value.startswith("Patient/") else ""


@dataclass
class Accumulator:
    """What one export said about one patient."""

    seen_patient: bool = False
    name: str = ""
    birth_date: date | None = None
    bp: tuple[datetime, Decimal, Decimal] | None = None
    systolic: dict[datetime, Decimal] = field(default_factory=dict)  # separate 8480-6 readings
    diastolic: dict[datetime, Decimal] = field(default_factory=dict)
    hba1c: tuple[datetime, Decimal] | None = None
    problems: dict[str, bool] = field(default_factory=dict)  # condition id -> active
    last_encounter: datetime | None = None

    def latest_bp(self) -> tuple[datetime, Decimal, Decimal] | None:
        """The newest panel, or the newest pair of separate readings taken at the same time."""
        best = self.bp
        for when in self.systolic.keys() & self.diastolic.keys():
            if best is None or when > best[0]:
                best = (when, self.systolic[when], self.diastolic[when])
        return best


def _newer(current: tuple | None, candidate: tuple) -> tuple:
    return candidate if current is None or candidate[0] >= current[0] else current


class Summarizer:
    """Feeds on resources (`add`) and writes the summary rows (`save`)."""

    def __init__(self) -> None:
        self.patients: dict[str, Accumulator] = {}

    def _acc(self, patient_id: str) -> Accumulator:
        acc = self.patients.get(patient_id)
        if acc is None:
            acc = self.patients[patient_id] = Accumulator()
        return acc

    def add(self, resource: dict[str, Any]) -> None:
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            self._patient(resource)
            return
        patient_id = _ref_id(resource.get("subject"))
        if not patient_id:
            return
        if rtype == "Observation":
            self._observation(self._acc(patient_id), resource)
        elif rtype == "Condition":
            self._condition(self._acc(patient_id), resource)
        elif rtype == "Encounter":
            self._encounter(self._acc(patient_id), resource)

    def _patient(self, resource: dict) -> None:
        pid = resource.get("id")
        if not isinstance(pid, str) or not pid:
            return
        acc = self._acc(pid)
        acc.seen_patient = True
        names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
        chosen = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
        given = " ".join(g for g in chosen.get("given") or [] if isinstance(g, str))
        acc.name = (chosen.get("text") or f"{given} {chosen.get('family') or ''}").strip()[:200]
        born = parse_when(resource.get("birthDate"))
        acc.birth_date = born.date() if born else None

    def _observation(self, acc: Accumulator, obs: dict) -> None:
        if obs.get("status") not in USABLE_STATUS:
            return
        when = parse_when(obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start"))
        if when is None:
            return
        measure = display.measure_for(_codes(obs.get("code")))
        if measure is None:
            return
        if measure.key == "bp":
            parts: dict[str, Decimal] = {}
            for component in obs.get("component") or []:
                part = display.measure_for(_codes(component.get("code")))
                value = _quantity(component, "mm[Hg]") if part else None
                if part is not None and value is not None:
                    parts[part.key] = value
            if "sys" in parts and "dia" in parts and not display.implausible_bp(parts["sys"], parts["dia"]):
                acc.bp = _newer(acc.bp, (when, parts["sys"], parts["dia"]))
        elif measure.key in ("sys", "dia"):
            value = _quantity(obs, "mm[Hg]")
            if value is not None:
                (acc.systolic if measure.key == "sys" else acc.diastolic)[when] = value
        elif measure.key == "hba1c":
            value = _quantity(obs, "%")
            if value is not None:
                acc.hba1c = _newer(acc.hba1c, (when, value))

    def _condition(self, acc: Accumulator, condition: dict) -> None:
        cid = condition.get("id")
        if not isinstance(cid, str):
            return
        clinical = {c.get("code") for c in (condition.get("clinicalStatus") or {}).get("coding") or []}
        verification = {
            c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding") or []
        }
        acc.problems[cid] = bool(clinical & ACTIVE_CLINICAL) and not (verification & NOT_A_PROBLEM)

    def _encounter(self, acc: Accumulator, encounter: dict) -> None:
        if encounter.get("status") in NOT_SEEN:
            return
        when = parse_when((encounter.get("period") or {}).get("start"))
        if when is not None and (acc.last_encounter is None or when > acc.last_encounter):
            acc.last_encounter = when

    # --- writing ----------------------------------------------------------------------------

    def save(self, ehr: Ehr, group_id: str, run: SyncRun | None = None, *, full: bool = False) -> int:
        """Upsert one row per patient; on a full run, drop rows of patients no longer exported."""
        high_sys, high_dia = display.cutoff("CLINICAL_BP_HIGH")[:2]
        ids = sorted(self.patients)
        written = 0
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            with transaction.atomic():
                existing = {
                    row.patient_id: row
                    for row in PatientSummary.objects.filter(ehr=ehr, group_id=group_id, patient_id__in=chunk)
                }
                new, changed = [], []
                for pid in chunk:
                    acc = self.patients[pid]
                    row = existing.get(pid)
                    if row is None:
                        if not acc.seen_patient:
                            continue  # data for a patient outside the group's Patient file
                        row = PatientSummary(ehr=ehr, group_id=group_id, patient_id=pid)
                        new.append(row)
                    else:
                        changed.append(row)
                    _merge(row, acc, high_sys, high_dia)
                    row.run = run
                PatientSummary.objects.bulk_create(new)
                PatientSummary.objects.bulk_update(changed, _FIELDS)
                written += len(new) + len(changed)
        if full:
            seen = [pid for pid, acc in self.patients.items() if acc.seen_patient]
            stale = PatientSummary.objects.filter(ehr=ehr, group_id=group_id).exclude(patient_id__in=seen)
            _delete_in_chunks(stale.values_list("pk", flat=True))
        return written


_FIELDS = [
    "name",
    "birth_date",
    "bp_systolic",
    "bp_diastolic",
    "bp_at",
    "bp_controlled",
    "hba1c",
    "hba1c_at",
    "problem_ids",
    "active_problems",
    "last_encounter_at",
    "run",
    "updated_at",
]


def _delete_in_chunks(pks: Iterable[int]) -> None:
    pks = list(pks)
    for start in range(0, len(pks), CHUNK):
        PatientSummary.objects.filter(pk__in=pks[start : start + CHUNK]).delete()


def _merge(row: PatientSummary, acc: Accumulator, high_sys: Decimal, high_dia: Decimal) -> None:
    """Fold what this export said into the stored row; newer readings win, older ones do not."""
    from django.utils import timezone

    if acc.seen_patient:
        row.name, row.birth_date = acc.name, acc.birth_date
    bp = acc.latest_bp()
    if bp is not None and (row.bp_at is None or bp[0] >= row.bp_at):
        row.bp_at, row.bp_systolic, row.bp_diastolic = bp
        row.bp_controlled = bp[1] < high_sys and bp[2] < high_dia
    if acc.hba1c is not None and (row.hba1c_at is None or acc.hba1c[0] >= row.hba1c_at):
        row.hba1c_at, row.hba1c = acc.hba1c[0], round(acc.hba1c[1], 2)
    problems = set(row.problem_ids or [])
    problems |= {cid for cid, active in acc.problems.items() if active}
    problems -= {cid for cid, active in acc.problems.items() if not active}
    row.problem_ids, row.active_problems = sorted(problems), len(problems)
    if acc.last_encounter is not None and (
        row.last_encounter_at is None or acc.last_encounter > row.last_encounter_at
    ):
        row.last_encounter_at = acc.last_encounter
    row.updated_at = timezone.now()
