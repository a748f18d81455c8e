"""One sync against a mocked EHR: deletions applied, withdrawn patients recomputed, errors kept as counts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses
from django.core.cache import cache

from population.models import PatientSummary, SyncRun
from population.sync import sync
from smartapp import keys
from smartapp.models import BackendRegistration

ISS = "https://ehr.example.org/fhir"
TOKEN = "https://ehr.example.org/auth/token"
KICKOFF = f"{ISS}/Group/g1/$export"
STATUS, STATUS2, STATUS3 = (f"{ISS}/bulkstatus/{n}" for n in (1, 2, 3))
LOINC = "http://loinc.org"


def _ndjson(*resources) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in resources)


def _bp(oid, when, sys, dia, pid="p1"):
    def part(code, value):
        return {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": {"value": value}}

    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "component": [part("8480-6", sys), part("8462-4", dia)],
    }


PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"text": "Ada King"}]}
OLD, NEW = _bp("bp-old", "2024-01-01", 150, 95), _bp("bp-new", "2024-06-01", 120, 80)


def _manifest(files=(), **extra):
    output = [{"type": t, "url": f"{ISS}/files/{name}"} for t, name in files]
    return {"transactionTime": "2025-01-15T10:00:00Z", "requiresAccessToken": True, "output": output, **extra}


@pytest.fixture
def mocked(db, settings):
    settings.SMART_JWKS = json.dumps(keys.generate_private_jwks())
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{ISS}/.well-known/smart-configuration",
            json={"token_endpoint": TOKEN, "token_endpoint_auth_methods_supported": ["private_key_jwt"]},
        )
        rsps.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
        rsps.get(f"{ISS}/Group/g1", status=403)
        for status in (STATUS, STATUS2, STATUS3):
            rsps.delete(status, status=202)
        yield rsps


@pytest.fixture
def reg(ehr) -> BackendRegistration:
    return BackendRegistration.objects.create(ehr=ehr, client_id="backend", group_id="g1")


def _first_sync(reg, mocked) -> None:
    mocked.get(KICKOFF, status=202, headers={"Content-Location": STATUS})
    mocked.get(STATUS, json=_manifest([("Patient", "p"), ("Observation", "o")]))
    mocked.get(f"{ISS}/files/p", body=_ndjson(PATIENT))
    mocked.get(f"{ISS}/files/o", body=_ndjson(OLD, NEW))
    assert sync(reg).status == SyncRun.Status.SUCCEEDED
    reg.refresh_from_db()
    mocked.calls.reset()


def _deletes(mocked, *urls) -> None:
    """The next kick-off's manifest lists these deletions (the first sync took STATUS)."""
    entries = [{"request": {"method": "DELETE", "url": url}} for url in urls]
    mocked.replace(responses.GET, KICKOFF, status=202, headers={"Content-Location": STATUS2})
    mocked.get(STATUS2, json=_manifest(deleted=[{"type": "Bundle", "url": f"{ISS}/files/d"}]))
    mocked.get(
        f"{ISS}/files/d", body=_ndjson({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    )


def test_a_deleted_latest_bp_is_recomputed_through_a_group_export_when_patient_is_refused(reg, mocked):
    _first_sync(reg, mocked)
    assert PatientSummary.objects.get().source_ids == {"bp": ["bp-new"]}
    _deletes(mocked, "Observation/bp-new")
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "not-supported"}]}
    mocked.post(KICKOFF, status=400, json=outcome)  # this EHR cannot narrow an export to patients
    mocked.add(responses.GET, KICKOFF, status=202, headers={"Content-Location": STATUS3})
    mocked.get(STATUS3, json=_manifest([("Observation", "o2")]))
    mocked.get(f"{ISS}/files/o2", body=_ndjson(OLD, _bp("bp-other", "2025-01-01", 200, 100, pid="p9")))
    run = sync(reg)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert (run.deleted, run.recomputed, run.incomplete) == (1, 1, False)
    kicks = [c.request for c in mocked.calls if c.request.url.startswith(KICKOFF)]
    assert [k.method for k in kicks] == ["GET", "POST", "GET"]
    assert "_since=" in kicks[0].url and "_since" not in kicks[2].url
    assert "_type=Observation%2CEncounter" in kicks[2].url
    row = PatientSummary.objects.get()
    assert (row.bp_systolic, row.source_ids) == (Decimal(150), {"bp": ["bp-old"]})
    assert not PatientSummary.objects.filter(patient_id="p9").exists()
    reg.refresh_from_db()
    assert reg.since == "2025-01-15T10:00:00Z"


def test_error_files_mark_the_run_incomplete_but_successful(reg, mocked):
    _first_sync(reg, mocked)
    errors = [
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found",
                                                        "diagnostics": "Patient/p1 (Ada King) not found"}]},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]},
    ]  # fmt: skip
    mocked.replace(responses.GET, KICKOFF, status=202, headers={"Content-Location": STATUS2})
    mocked.get(STATUS2, json=_manifest(error=[{"type": "OperationOutcome", "url": f"{ISS}/files/e"}]))
    mocked.get(f"{ISS}/files/e", body=_ndjson(*errors))
    run = sync(reg)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED and run.incomplete
    assert run.issues == {"error": {"not-found": 1, "processing": 1}}
    assert run.outcome_words() == (
        "The EHR reported 2 errors (1 not-found, 1 processing): this run may be incomplete"
    )
    stored = json.dumps([v for v in SyncRun.objects.values().get(pk=run.pk).values()], default=str)
    assert "Ada King" not in stored
    reg.refresh_from_db()
    assert reg.since == "2025-01-15T10:00:00Z"  # a success: the next run goes on from here


def test_a_deleted_patient_needs_no_recompute_for_its_readings(reg, mocked):
    _first_sync(reg, mocked)
    _deletes(mocked, "Observation/bp-new", "Patient/p1", "Patient/not-in-the-summary")
    run = sync(reg)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.deleted, run.recomputed) == (3, 0)
    assert not any(c.request.method == "POST" for c in mocked.calls if c.request.url == KICKOFF)
    assert not PatientSummary.objects.exists()


def test_a_failed_second_export_fails_the_run_and_writes_nothing(reg, mocked):
    _first_sync(reg, mocked)
    _deletes(mocked, "Observation/bp-new")
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "exception"}]}
    mocked.post(KICKOFF, status=500, json=outcome)
    run = sync(reg)
    assert run.status == SyncRun.Status.FAILED and "HTTP 500" in run.errors
    row = PatientSummary.objects.get()
    assert (row.bp_systolic, row.source_ids) == (Decimal(120), {"bp": ["bp-new"]})  # untouched
    previous = reg.since
    reg.refresh_from_db()
    assert reg.since == previous and run.transaction_time == ""  # the next run sees the deletion again
