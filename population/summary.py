"""From exported resources to one summary row per patient, upserted idempotently.

Resources arrive one at a time (streamed NDJSON); only a small accumulator per patient is kept.
Codes and units follow the dashboard's rules (`clinical.display`: `measure_for`, `convert`,
the BP cut-off), so the population page and the dashboard agree on what a reading is.
Applying the same resource twice changes nothing (latest-by-date, sets of problem ids), so a
run that is repeated or restarted writes no duplicate rows and no double counts.

Deletions (the export's `deleted` files, applied after its data) and readings that stop
counting (re-exported as entered-in-error or cancelled) are honoured as follows. A Patient: its
row goes. A Condition: its id leaves the row's problem ids (kept for this). An Observation or
Encounter: each row keeps the ids of the resources behind its latest BP, HbA1c and encounter
(`source_ids`); losing any other resource leaves the row right as it is, and losing one of those
makes the shown value wrong with nothing in an incremental export to say what came before it.
Those few patients are "withdrawn" and recomputed from a second export of their Observations and
Encounters (population/sync.py), which replaces their readings. Keeping every reading's id
instead would turn one small row per patient into a copy of its chart; a full export instead
would make every deletion as costly as `--full`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from clinical import display
from population.models import PatientSummary, SyncRun
from smartapp.models import Ehr

LOINC = "http://loinc.org"
USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}
ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
NOT_A_PROBLEM = {"entered-in-error", "refuted"}
NOT_SEEN = {"planned", "cancelled", "entered-in-error"}
CHUNK = 500
SUMMARISED = ("Patient", "Observation", "Condition", "Encounter")
READINGS = ("Observation", "Encounter")  # what a withdrawn patient's second export holds


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
    """What one export said about one patient; each reading keeps the id(s) it came from."""

    seen_patient: bool = False
    name: str = ""
    birth_date: date | None = None
    bp: tuple[datetime, Decimal, Decimal, tuple[str, ...]] | None = None
    systolic: dict[datetime, tuple[Decimal, str]] = field(default_factory=dict)  # separate 8480-6
    diastolic: dict[datetime, tuple[Decimal, str]] = field(default_factory=dict)
    hba1c: tuple[datetime, Decimal, str] | None = None
    problems: dict[str, bool] = field(default_factory=dict)  # condition id -> active
    last_encounter: tuple[datetime, str] | None = None

    def latest_bp(self) -> tuple[datetime, Decimal, Decimal, tuple[str, ...]] | None:
        """The newest panel, or the newest pair of separate readings taken at the same time."""
        best = self.bp
        for when in self.systolic.keys() & self.diastolic.keys():
            if best is None or when > best[0]:
                (sys, sys_id), (dia, dia_id) = self.systolic[when], self.diastolic[when]
                best = (when, sys, dia, (sys_id, dia_id))
        return best

    def sources(self) -> dict[str, list[str]]:
        """The ids behind what this accumulator would show, as a row keeps them."""
        bp = self.latest_bp()
        found = {
            "bp": list(bp[3]) if bp else [],
            "hba1c": [self.hba1c[2]] if self.hba1c else [],
            "encounter": [self.last_encounter[1]] if self.last_encounter else [],
        }
        return {key: [i for i in ids if i] for key, ids in found.items() if any(ids)}


def _newer(current: tuple | None, candidate: tuple) -> tuple:
    return candidate if current is None or candidate[0] >= current[0] else current


class Summarizer:
    """Feeds on resources (`add`) and deletions (`delete`), plans the patients to recompute
    (`plan`, then `refresh` with their second export), and writes the summary rows (`save`)."""

    def __init__(self) -> None:
        self.patients: dict[str, Accumulator] = {}
        self.deleted: dict[str, set[str]] = {rtype: set() for rtype in SUMMARISED}
        self.unusable: dict[str, set[str]] = {rtype: set() for rtype in READINGS}
        self.withdrawn: set[str] = set()  # patients whose shown reading is gone: recomputed
        self.fresh: dict[str, Accumulator] = {}  # their readings from the second export
        self._touched: set[str] = set()  # rows that lose a deleted Condition
        self._planned = False

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
        used = True
        if rtype == "Observation":
            used = self._observation(self._acc(patient_id), resource)
        elif rtype == "Condition":
            self._condition(self._acc(patient_id), resource)
        elif rtype == "Encounter":
            used = self._encounter(self._acc(patient_id), resource)
        if used is False and isinstance(resource.get("id"), str):
            self.unusable[rtype].add(resource["id"])  # e.g. now entered-in-error: a source no more

    def delete(self, rtype: str, rid: str) -> None:
        """One resource the EHR deleted since the last run (a type it does not summarise is ignored)."""
        if rtype in self.deleted:
            self.deleted[rtype].add(rid)

    @property
    def deletions(self) -> int:
        """Distinct deleted resources of the summarised types, all of them honoured by `save`."""
        return sum(len(ids) for ids in self.deleted.values())

    def plan(self, ehr: Ehr, group_id: str) -> set[str]:
        """The patients whose shown BP, HbA1c or last encounter came from a deleted or withdrawn
        resource, to be re-exported and passed to `refresh`. Reads the rows, writes nothing."""
        gone_obs = self.deleted["Observation"] | self.unusable["Observation"]
        gone_enc = self.deleted["Encounter"] | self.unusable["Encounter"]
        gone_conditions = self.deleted["Condition"]
        withdrawn: set[str] = set()
        touched: set[str] = set()
        if gone_obs or gone_enc or gone_conditions:
            rows = PatientSummary.objects.filter(ehr=ehr, group_id=group_id).values_list(
                "patient_id", "source_ids", "problem_ids"
            )
            for pid, sources, problems in rows.iterator(chunk_size=2000):
                if _hit(sources, gone_obs, gone_enc):
                    withdrawn.add(pid)
                if gone_conditions.intersection(problems or ()):
                    touched.add(pid)
            withdrawn |= {
                pid for pid, acc in self.patients.items() if _hit(acc.sources(), gone_obs, gone_enc)
            }
        self.withdrawn = withdrawn - self.deleted["Patient"]
        self._touched = touched - self.deleted["Patient"]
        self._planned = True
        return set(self.withdrawn)

    def refresh(self, resource: dict[str, Any]) -> None:
        """A resource of the second export: counts only for a withdrawn patient (a group-wide
        export, when the EHR cannot narrow one to some patients, brings everyone's)."""
        patient_id = _ref_id(resource.get("subject"))
        if patient_id not in self.withdrawn:
            return
        acc = self.fresh.setdefault(patient_id, Accumulator())
        if resource.get("resourceType") == "Observation":
            self._observation(acc, resource)
        elif resource.get("resourceType") == "Encounter":
            self._encounter(acc, resource)

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

    def _observation(self, acc: Accumulator, obs: dict) -> bool | None:
        """Fold one Observation in: True if used, False if a BP or HbA1c that does not count
        (status, date, value), None if not a measure the summary shows."""
        measure = display.measure_for(_codes(obs.get("code")))
        if measure is None or measure.key not in ("bp", "sys", "dia", "hba1c"):
            return None
        if obs.get("status") not in USABLE_STATUS:
            return False
        when = parse_when(obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start"))
        if when is None:
            return False
        oid = obs.get("id") if isinstance(obs.get("id"), str) else ""
        if measure.key == "bp":
            parts: dict[str, Decimal] = {}
            for component in obs.get("component") or []:
                part = display.measure_for(_codes(component.get("code")))
                value = _quantity(component, "mm[Hg]") if part else None
                if part is not None and value is not None:
                    parts[part.key] = value
            if "sys" not in parts or "dia" not in parts or display.implausible_bp(parts["sys"], parts["dia"]):
                return False
            acc.bp = _newer(acc.bp, (when, parts["sys"], parts["dia"], (oid,)))
        elif measure.key in ("sys", "dia"):
            value = _quantity(obs, "mm[Hg]")
            if value is None:
                return False
            (acc.systolic if measure.key == "sys" else acc.diastolic)[when] = (value, oid)
        else:
            value = _quantity(obs, "%")
            if value is None:
                return False
            acc.hba1c = _newer(acc.hba1c, (when, value, oid))
        return True

    def _condition(self, acc: Accumulator, condition: dict) -> None:
        cid = condition.get("id")
        if not isinstance(cid, str):
            return
        clinical = {c.get("code") for c in (condition.get("clinicalStatus") or {}).get("coding") or []}
        verification = {
            c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding") or []
        }
        acc.problems[cid] = bool(clinical & ACTIVE_CLINICAL) and not (verification & NOT_A_PROBLEM)

    def _encounter(self, acc: Accumulator, encounter: dict) -> bool:
        if encounter.get("status") in NOT_SEEN:
            return False
        when = parse_when((encounter.get("period") or {}).get("start"))
        if when is None:
            return False
        eid = encounter.get("id") if isinstance(encounter.get("id"), str) else ""
        if acc.last_encounter is None or when > acc.last_encounter[0]:
            acc.last_encounter = (when, eid)
        return True

    # --- writing ----------------------------------------------------------------------------

    def save(
        self,
        ehr: Ehr,
        group_id: str,
        run: SyncRun | None = None,
        *,
        full: bool = False,
        complete: bool = True,
    ) -> int:
        """Upsert one row per patient, apply the deletions; on a full run, drop rows of patients no
        longer exported. A full and `complete` run (no errors reported) rebuilds each exported
        patient's readings and problems from the export instead of merging them in."""
        if not full and not self._planned:
            self.plan(ehr, group_id)
        high_sys, high_dia = display.cutoff("CLINICAL_BP_HIGH")[:2]
        gone_patients = self.deleted["Patient"]
        gone_conditions = frozenset(self.deleted["Condition"])
        ids = sorted((self.patients.keys() | self.withdrawn | self._touched) - gone_patients)
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
                    acc = self.patients.get(pid) or Accumulator()
                    row = existing.get(pid)
                    if row is None:
                        if not acc.seen_patient:
                            continue  # data for a patient outside the group's Patient file
                        row = PatientSummary(ehr=ehr, group_id=group_id, patient_id=pid)
                        new.append(row)
                    else:
                        changed.append(row)
                    readings = self.fresh.get(pid, Accumulator()) if pid in self.withdrawn else None
                    _merge(
                        row,
                        acc,
                        high_sys,
                        high_dia,
                        readings=readings,
                        rebuild=full and complete,
                        gone_conditions=gone_conditions,
                    )
                    row.run = run
                PatientSummary.objects.bulk_create(new)
                PatientSummary.objects.bulk_update(changed, _FIELDS)
                written += len(new) + len(changed)
        if gone_patients:
            ids = sorted(gone_patients)
            for start in range(0, len(ids), CHUNK):
                PatientSummary.objects.filter(
                    ehr=ehr, group_id=group_id, patient_id__in=ids[start : start + CHUNK]
                ).delete()
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
    "source_ids",
    "run",
    "updated_at",
]


def _hit(sources: Any, gone_obs: set[str], gone_enc: set[str]) -> bool:
    """Whether a row's (or accumulator's) shown readings came from a resource that is gone."""
    if not isinstance(sources, dict):
        return False
    observations = [*sources.get("bp", ()), *sources.get("hba1c", ())]
    return any(i in gone_obs for i in observations) or any(
        i in gone_enc for i in sources.get("encounter", ())
    )


def _delete_in_chunks(pks: Iterable[int]) -> None:
    pks = list(pks)
    for start in range(0, len(pks), CHUNK):
        PatientSummary.objects.filter(pk__in=pks[start : start + CHUNK]).delete()


def _merge(
    row: PatientSummary,
    acc: Accumulator,
    high_sys: Decimal,
    high_dia: Decimal,
    *,
    readings: Accumulator | None = None,
    rebuild: bool = False,
    gone_conditions: frozenset[str] = frozenset(),
) -> None:
    """Fold what this export said into the stored row; newer readings win, older ones do not.

    `readings`: a withdrawn patient's complete Observations and Encounters from the second
    export, which replace the row's readings (none there: none shown). `rebuild`: a complete
    full export, whose readings and problems replace the row's likewise.
    """
    if acc.seen_patient:
        row.name, row.birth_date = acc.name, acc.birth_date
    replace = rebuild or readings is not None
    source = readings if readings is not None else acc
    sources = {} if replace else {k: v for k, v in (row.source_ids or {}).items() if k in _KINDS}
    fresh = source.sources()
    bp = source.latest_bp()
    if replace or (bp is not None and (row.bp_at is None or bp[0] >= row.bp_at)):
        if bp is None:
            row.bp_at = row.bp_systolic = row.bp_diastolic = row.bp_controlled = None
        else:
            row.bp_at, row.bp_systolic, row.bp_diastolic = bp[:3]
            row.bp_controlled = bp[1] < high_sys and bp[2] < high_dia
        _keep(sources, fresh, "bp")
    if replace or (source.hba1c is not None and (row.hba1c_at is None or source.hba1c[0] >= row.hba1c_at)):
        if source.hba1c is None:
            row.hba1c_at = row.hba1c = None
        else:
            row.hba1c_at, row.hba1c = source.hba1c[0], round(source.hba1c[1], 2)
        _keep(sources, fresh, "hba1c")
    seen = source.last_encounter
    if replace or (seen is not None and (row.last_encounter_at is None or seen[0] > row.last_encounter_at)):
        row.last_encounter_at = seen[0] if seen is not None else None
        _keep(sources, fresh, "encounter")
    row.source_ids = sources
    problems = set() if rebuild else set(row.problem_ids or [])
    problems |= {cid for cid, active in acc.problems.items() if active}
    problems -= {cid for cid, active in acc.problems.items() if not active}
    problems -= gone_conditions
    row.problem_ids, row.active_problems = sorted(problems), len(problems)
    row.updated_at = timezone.now()


_KINDS = ("bp", "hba1c", "encounter")


def _keep(sources: dict[str, list[str]], fresh: dict[str, list[str]], kind: str) -> None:
    """The row now shows `kind` from `fresh` (or nothing): its source ids follow."""
    if fresh.get(kind):
        sources[kind] = fresh[kind]
    else:
        sources.pop(kind, None)
