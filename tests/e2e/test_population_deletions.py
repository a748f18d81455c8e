"""End to end: deletions and error files of the sandbox's exports, through two syncs, to the staff page.

Each test gets its own sandbox (deletions there are permanent); the app's code runs in this
process on its test database, and the sandbox fetches the app's JWKS from a loopback URL.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache

from population.models import PatientSummary, SyncRun
from population.sync import sync
from smartapp import keys
from smartapp.models import BackendRegistration, Ehr
from tests.sandbox_server import start_sandbox
from tests.static_server import serve_bytes

pytestmark = pytest.mark.e2e

CLIENT = "population-deletions"
PRIVATE_JWKS = json.dumps(keys.generate_private_jwks())
PAGE = "/population/sandbox/grp-htn/"


@pytest.fixture(scope="module")
def jwks_url():
    public = {"keys": [k.public_jwk() for k in keys._parse(PRIVATE_JWKS, "test")]}
    with serve_bytes(json.dumps(public).encode(), "application/json") as base:
        yield f"{base}/.well-known/jwks.json"


@pytest.fixture
def sandbox(tmp_path, jwks_url):
    client = {"client_id": CLIENT, "jwks_url": jwks_url, "redirect_uris": ["http://localhost:1/callback"]}
    with start_sandbox(tmp_path / "sandbox.sqlite3", [client], anchor="2025-01-15") as server:
        server.set_faults(CLIENT, bulk_retry_after=0)
        yield server


@pytest.fixture
def registration(db, settings, sandbox) -> BackendRegistration:
    settings.SMART_JWKS = PRIVATE_JWKS
    settings.SMART_ALLOW_HTTP_LOOPBACK = True
    cache.clear()
    ehr = Ehr.objects.create(
        name="Sandbox", slug="sandbox", iss=sandbox.fhir_base, client_id="launch-client", client_secret="s"
    )
    return BackendRegistration.objects.create(ehr=ehr, client_id=CLIENT, group_id="grp-htn", alg="ES384")


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.content.decode()))


def _synced(registration) -> SyncRun:
    run = sync(registration)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    registration.refresh_from_db()
    return run


def test_a_patient_deleted_between_two_syncs_leaves_the_population_page(registration, sandbox, admin_client):
    _synced(registration)
    assert "pat-garcia" in _text(admin_client.get(PAGE))
    others = PatientSummary.objects.exclude(patient_id="pat-garcia").count()
    gone = sandbox.delete_resource("Patient/pat-garcia")
    run = _synced(registration)
    assert run.since and run.deleted == len(gone) and run.recomputed == 0
    assert not run.incomplete
    assert not PatientSummary.objects.filter(patient_id="pat-garcia").exists()
    assert PatientSummary.objects.count() == others  # nobody else was touched
    page = _text(admin_client.get(PAGE))
    assert "pat-garcia" not in page and "Maria" not in page
    assert f"{len(gone)} resources deleted in the EHR were removed." in page
    assert "incomplete" not in page
    assert _synced(registration).deleted == 0  # the next run starts after the deletion


def test_a_deleted_latest_bp_and_problem_are_recomputed(registration, sandbox):
    _synced(registration)
    before = PatientSummary.objects.get(patient_id="pat-garcia")
    assert "cond-garcia-3" in before.problem_ids  # obesity; hypertension keeps her in the group
    shown = before.source_ids["bp"]
    for oid in shown:
        sandbox.delete_resource(f"Observation/{oid}")
    sandbox.delete_resource("Condition/cond-garcia-3")
    run = _synced(registration)
    assert (run.deleted, run.recomputed) == (len(shown) + 1, 1)
    after = PatientSummary.objects.get(patient_id="pat-garcia")
    assert after.bp_at is not None and after.bp_at <= before.bp_at  # the reading before it
    assert not set(after.source_ids["bp"]) & set(shown)
    assert "cond-garcia-3" not in after.problem_ids
    assert after.active_problems == before.active_problems - 1
    assert (after.hba1c, after.last_encounter_at) == (before.hba1c, before.last_encounter_at)
    full = sync(registration, full=True)  # the same answer from scratch
    assert full.status == SyncRun.Status.SUCCEEDED
    rebuilt = PatientSummary.objects.get(patient_id="pat-garcia")
    assert (rebuilt.bp_at, rebuilt.bp_systolic, rebuilt.problem_ids) == (
        after.bp_at,
        after.bp_systolic,
        after.problem_ids,
    )


def test_an_ehr_without_the_patient_parameter_gets_a_group_export_instead(registration, sandbox):
    _synced(registration)
    before = PatientSummary.objects.get(patient_id="pat-ehrstyle")
    for oid in before.source_ids["bp"]:
        sandbox.delete_resource(f"Observation/{oid}")
    sandbox.set_faults(CLIENT, merge=True, bulk_no_patient_param=True)
    sandbox.reset_stats()
    run = _synced(registration)
    assert run.recomputed == 1
    assert sandbox.stats()["fhir"]["by_type"]["$export"] == 3  # incremental, refused POST, group GET
    after = PatientSummary.objects.get(patient_id="pat-ehrstyle")
    assert after.bp_at is not None and not set(after.source_ids["bp"]) & set(before.source_ids["bp"])


def test_an_error_file_marks_the_run_incomplete(registration, sandbox, admin_client):
    _synced(registration)
    since = registration.since
    sandbox.set_faults(CLIENT, merge=True, bulk_error_codes=["not-found", "not-found", "processing"])
    run = _synced(registration)
    assert run.incomplete and run.issues == {"error": {"not-found": 2, "processing": 1}}
    assert registration.since != since  # still a success: the next run goes on from here
    page = _text(admin_client.get(PAGE))
    assert "(succeeded, incomplete)" in page
    assert "The EHR reported 3 errors (2 not-found, 1 processing): this run may be incomplete." in page
    stored = json.dumps(list(SyncRun.objects.values()), default=str)
    assert "Jane Doe" not in stored and "MRN" not in stored and "Jane Doe" not in page
    assert "incomplete" in _text(admin_client.get("/population/"))
