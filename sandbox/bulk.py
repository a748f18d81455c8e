"""Bulk Data Access ($export) of the sandbox: Groups, async export jobs, NDJSON files.

Groups are defined by what the data say (a patient with an active hypertension or type 2
diabetes Condition is in that clinic), so they follow the seed with no table of their own. The
`pop` group holds the generated population (`runsandbox --population N`), made on demand only.

Jobs live in memory: the sandbox is one multi-threaded process, and a restart ending every
export is what a real server's job loss looks like to a client. Deletions (`delete_resource`,
from the test-only API) leave tombstones in the database, listed in the `deleted` files of later
`_since` exports as the spec's transaction Bundles of DELETE entries.

Reference: https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from sandbox import codes, synthetic
from sandbox.store import Deletion, Resource

EXPORT_TYPES = ("Patient", "Encounter", "Observation", "Condition")
NDJSON_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
PART_SIZE = 20_000  # resources (or deletions) per NDJSON file
BUNDLE_SIZE = 100  # DELETE entries per transaction Bundle (one line of a deleted file)
LEAKY_NAME = "MRN 000123 (Jane Doe)"  # what an EHR's error diagnostics may say about a patient
JOB_TTL = 3600  # seconds a finished job and its files stay available
POPULATION_PREFIX = "pop-"

# id -> (name, condition codes; any coding of an active Condition puts its patient in the group)
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grp-htn": ("Hypertension clinic", ("38341003", "59621000", "I10")),
    "grp-dm": ("Diabetes clinic", ("44054006", "E11.9", "E11.65")),
}
POPULATION_GROUP = ("pop", "Generated population")


def group_members(group_id: str) -> Q | None:
    """A filter on Resource.patient_id selecting the group's patients, or None (no such group)."""
    if group_id == POPULATION_GROUP[0]:
        return Q(patient_id__startswith=POPULATION_PREFIX)
    if group_id not in GROUPS:
        return None
    codes = Q()
    for code in GROUPS[group_id][1]:
        codes |= Q(codes__contains=f"|{code} ")
    conditions = Resource.objects.filter(codes, rtype="Condition", clinical_status="active")
    return Q(patient_id__in=conditions.values("patient_id"))


def group_resource(group_id: str, base: str) -> dict | None:
    """The Group resource (type person, actual), members listed."""
    members = group_members(group_id)
    if members is None:
        return None
    name = POPULATION_GROUP[1] if group_id == POPULATION_GROUP[0] else GROUPS[group_id][0]
    ids = Resource.objects.filter(members, rtype="Patient").order_by("rid").values_list("rid", flat=True)
    return {
        "resourceType": "Group",
        "id": group_id,
        "type": "person",
        "actual": True,
        "name": name,
        "quantity": len(ids),
        "member": [{"entity": {"reference": f"Patient/{rid}"}} for rid in ids],
    }


def exact_now() -> str:
    """Now as a UTC instant to the microsecond: fixed width, so text order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def groups_of(patient_id: str) -> list[str]:
    """The Groups a patient is in now (membership follows the data: kept with each tombstone)."""
    patient = Resource.objects.filter(rtype="Patient", rid=patient_id)
    ids = [gid for gid in GROUPS if patient.filter(group_members(gid)).exists()]
    return [*ids, POPULATION_GROUP[0]] if patient_id.startswith(POPULATION_PREFIX) else ids


@transaction.atomic
def delete_resource(rtype: str, rid: str) -> list[str]:
    """Delete a resource (a Patient with its whole compartment, as a cascading delete does) and
    keep a tombstone of each; returns the references deleted ([] when there is no such resource)."""
    target = Resource.objects.filter(rtype=rtype, rid=rid).first()
    if target is None:
        return []
    groups = f" {' '.join(groups_of(target.patient_id))} " if target.patient_id else ""
    rows = (
        Resource.objects.filter(patient_id=rid)
        if rtype == "Patient"
        else Resource.objects.filter(pk=target.pk)
    )
    gone = list(rows.values_list("rtype", "rid", "patient_id"))
    when = exact_now()
    Deletion.objects.bulk_create(
        Deletion(rtype=t, rid=i, patient_id=p, groups=groups, deleted_at=when) for t, i, p in gone
    )
    rows.delete()
    return [f"{t}/{i}" for t, i, _p in gone]


# --- Jobs -------------------------------------------------------------------------------------


@dataclass
class Job:
    id: str
    client_pk: int
    request: str
    types: tuple[str, ...]
    since: str  # UTC ISO instant, or ""
    members: Q | None  # None: every patient
    transaction_time: str
    group_id: str = ""
    patients: tuple[str, ...] = ()  # `patient` parameters: only these patients' resources
    deleted_since: str = ""  # `since` to the microsecond, as tombstones are stamped
    error_codes: tuple[str, ...] = ()  # the error file's issues (fault bulk_error_codes)
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    completed: bool = False
    deleted: bool = False

    def rows(self, rtype: str):
        qs = Resource.objects.filter(rtype=rtype).exclude(patient_id="")
        if self.members is not None:
            qs = qs.filter(self.members)
        if self.patients:
            qs = qs.filter(patient_id__in=self.patients)
        if self.since:
            qs = qs.filter(last_updated__gt=self.since)
        return qs

    def deletions(self):
        """Tombstones of the requested types deleted after `_since` (none without one), of the
        group's patients then; a resource that exists again is not listed (the spec: never in
        both `output` and `deleted`)."""
        if not self.deleted_since:
            return Deletion.objects.none()
        qs = Deletion.objects.filter(rtype__in=self.types, deleted_at__gt=self.deleted_since)
        group = Q(groups__contains=f" {self.group_id} ") if self.group_id else ~Q(patient_id="")
        qs = qs.filter(group)
        if self.patients:
            qs = qs.filter(patient_id__in=self.patients)
        back = Resource.objects.filter(rtype=OuterRef("rtype"), rid=OuterRef("rid"))
        return qs.exclude(Exists(back)).order_by("pk")

    def manifest(self, base: str, error_codes: tuple[str, ...] = ()) -> dict:
        self.error_codes = error_codes
        output = []
        for rtype in self.types:
            count = self.rows(rtype).count()
            for part in range((count + PART_SIZE - 1) // PART_SIZE):
                output.append(
                    {
                        "type": rtype,
                        "url": f"{base}/_bulk/file/{self.id}/{rtype}/{part}",
                        "count": min(PART_SIZE, count - part * PART_SIZE),
                    }
                )
        count = self.deletions().count()
        deleted = [
            {"type": "Bundle", "url": f"{base}/_bulk/deleted/{self.id}/{part}"}
            for part in range((count + PART_SIZE - 1) // PART_SIZE)
        ]
        errors = (
            [{"type": "OperationOutcome", "url": f"{base}/_bulk/error/{self.id}/0"}] if error_codes else []
        )
        return {
            "transactionTime": self.transaction_time,
            "request": self.request,
            "requiresAccessToken": True,
            "output": output,
            **({"deleted": deleted} if deleted else {}),
            "error": errors,
        }

    def part(self, rtype: str, part: int):
        """The stored bodies of one file, in a stable order, streamed from the database."""
        qs = self.rows(rtype).order_by("pk").values_list("body", flat=True)
        return qs[part * PART_SIZE : (part + 1) * PART_SIZE].iterator(chunk_size=1000)

    def deleted_part(self, part: int):
        """One `deleted` file: transaction Bundles of up to BUNDLE_SIZE DELETE entries each."""
        refs = self.deletions().values_list("rtype", "rid")[part * PART_SIZE : (part + 1) * PART_SIZE]
        refs = list(refs)
        for start in range(0, len(refs), BUNDLE_SIZE):
            yield {
                "resourceType": "Bundle",
                "id": secrets.token_hex(8),
                "type": "transaction",
                "entry": [
                    {"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}}
                    for rtype, rid in refs[start : start + BUNDLE_SIZE]
                ],
            }

    def error_outcomes(self):
        """The error file: one OperationOutcome per injected code. Its diagnostics name a
        patient, as real ones do, so tests can check that the app keeps no such text."""
        for code in self.error_codes:
            yield {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": code,
                        "diagnostics": f"injected fault: a record of {LEAKY_NAME} could not be exported",
                    }
                ],
            }


_jobs: dict[str, Job] = {}
_lock = threading.Lock()


def start(
    client_pk: int,
    request: str,
    types: tuple[str, ...],
    since: str,
    members: Q | None,
    *,
    group_id: str = "",
    patients: tuple[str, ...] = (),
    deleted_since: str = "",
) -> Job:
    now = datetime.now(UTC)
    job = Job(
        id=secrets.token_urlsafe(16),
        client_pk=client_pk,
        request=request,
        types=types,
        since=since,
        members=members,
        transaction_time=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        group_id=group_id,
        patients=patients,
        deleted_since=deleted_since,
    )
    with _lock:
        for stale in [k for k, j in _jobs.items() if time.monotonic() - j.created > JOB_TTL]:
            del _jobs[stale]
        _jobs[job.id] = job
    return job


def get(job_id: str) -> Job | None:
    with _lock:
        job = _jobs.get(job_id)
    return None if job is None or job.deleted else job


def delete(job_id: str) -> bool:
    with _lock:
        job = _jobs.get(job_id)
        if job is None or job.deleted:
            return False
        job.deleted = True
        return True


def active_count(client_pk: int) -> int:
    with _lock:
        return sum(1 for j in _jobs.values() if j.client_pk == client_pk and not (j.deleted or j.completed))


# --- The generated population (on demand) -------------------------------------------------------


def population_rows(n: int, seed: int, anchor: datetime) -> list[dict]:
    """`n` small patients for scale: demographics, two BPs, an HbA1c, problems, an encounter."""
    from sandbox.seed import resource_row

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    stamp = synthetic.iso(anchor)
    rows = []
    loinc, snomed = codes.LOINC, codes.SNOMED
    for i in range(n):
        pid = f"{POPULATION_PREFIX}{i:05d}"
        subject = {"reference": f"Patient/{pid}"}
        birth = anchor - timedelta(days=rng.randint(25 * 365, 90 * 365))
        resources = [
            {
                "resourceType": "Patient",
                "id": pid,
                "name": [{"family": f"Pop{i:05d}", "given": ["Test"]}],
                "gender": rng.choice(("female", "male")),
                "birthDate": birth.date().isoformat(),
            }
        ]
        seen = anchor - timedelta(days=rng.randint(1, 600))
        enc = f"{pid}-enc"
        resources.append(
            {
                "resourceType": "Encounter",
                "id": enc,
                "status": "finished",
                "class": {"system": codes.ACT, "code": "AMB"},
                "subject": subject,
                "period": {"start": synthetic.iso(seen), "end": synthetic.iso(seen + timedelta(minutes=30))},
            }
        )
        for k, days in enumerate((rng.randint(100, 400), (anchor - seen).days)):
            when = anchor - timedelta(days=days)
            resources.append(
                {
                    "resourceType": "Observation",
                    "id": f"{pid}-bp{k}",
                    "status": "final",
                    "category": [{"coding": [{"system": codes.OBS_CAT, "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": loinc, "code": "85354-9"}], "text": "Blood pressure"},
                    "subject": subject,
                    "effectiveDateTime": synthetic.iso(when),
                    "component": [
                        {
                            "code": {"coding": [{"system": loinc, "code": "8480-6"}]},
                            "valueQuantity": synthetic._qty(rng.randint(105, 175), "mm[Hg]"),
                        },
                        {
                            "code": {"coding": [{"system": loinc, "code": "8462-4"}]},
                            "valueQuantity": synthetic._qty(rng.randint(60, 105), "mm[Hg]"),
                        },
                    ],
                }
            )
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{pid}-a1c",
                "status": "final",
                "category": [{"coding": [{"system": codes.OBS_CAT, "code": "laboratory"}]}],
                "code": {"coding": [{"system": loinc, "code": "4548-4"}], "text": "HbA1c"},
                "subject": subject,
                "effectiveDateTime": synthetic.iso(anchor - timedelta(days=rng.randint(10, 500))),
                "valueQuantity": synthetic._qty(round(rng.uniform(5.0, 11.5), 1), "%"),
            }
        )
        for code, text in rng.sample([("38341003", "Hypertension"), ("44054006", "Type 2 diabetes")], 2):
            resources.append(
                {
                    "resourceType": "Condition",
                    "id": f"{pid}-{code}",
                    "clinicalStatus": {"coding": [{"system": codes.COND_CLIN, "code": "active"}]},
                    "code": {"coding": [{"system": snomed, "code": code}], "text": text},
                    "subject": subject,
                }
            )
        rows.extend(resource_row(r, stamp) for r in resources)
    return rows


def ensure_population(n: int, seed: int) -> int:
    """Add the generated population up to `n` patients (an existing one is kept); returns how many."""
    from sandbox.seed import _insert

    have = Resource.objects.filter(rtype="Patient", rid__startswith=POPULATION_PREFIX).count()
    if have >= n:
        return have
    Resource.objects.filter(patient_id__startswith=POPULATION_PREFIX).delete()
    anchor = synthetic.anchor_at(None)
    first = Resource.objects.filter(rtype="Patient").order_by("pk").values_list("last_updated", flat=True)
    if first:
        anchor = datetime.fromisoformat(first[0].replace("Z", "+00:00"))
    rows = population_rows(n, seed, anchor)
    for start_at in range(0, len(rows), 5000):
        _insert(rows[start_at : start_at + 5000])
    return n
