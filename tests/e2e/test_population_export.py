"""End to end: backend token, $export, polling and NDJSON from the sandbox over HTTP, into the summary.

The app's code runs in this process (its test database); the sandbox EHR is a real server that
fetches the app's JWKS from a loopback URL, as a real EHR would.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from population.models import PatientSummary, SyncRun
from population.sync import sync
from smartapp import keys
from smartapp.models import BackendRegistration, Ehr
from tests.sandbox_server import start_sandbox
from tests.static_server import serve_bytes

pytestmark = pytest.mark.e2e

CLIENT = "population-backend"
PRIVATE_JWKS = json.dumps(keys.generate_private_jwks())


def _public_jwks() -> bytes:
    from smartapp.keys import _parse

    return json.dumps({"keys": [k.public_jwk() for k in _parse(PRIVATE_JWKS, "test")]}).encode()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with serve_bytes(_public_jwks(), "application/json") as jwks_base:
        client = {
            "client_id": CLIENT,
            "jwks_url": f"{jwks_base}/.well-known/jwks.json",
            "redirect_uris": ["http://localhost:1/callback"],
        }
        db = tmp_path_factory.mktemp("population") / "sandbox.sqlite3"
        with start_sandbox(db, [client], anchor="2025-01-15") as server:
            yield server


@pytest.fixture
def registration(db, settings, sandbox) -> BackendRegistration:
    settings.SMART_JWKS = PRIVATE_JWKS
    settings.SMART_ALLOW_HTTP_LOOPBACK = True
    cache.clear()
    sandbox.reset_faults(CLIENT)
    sandbox.set_faults(CLIENT, bulk_retry_after=0)
    ehr = Ehr.objects.create(
        name="Sandbox", slug="sandbox", iss=sandbox.fhir_base, client_id="launch-client", client_secret="s"
    )
    yield BackendRegistration.objects.create(ehr=ehr, client_id=CLIENT, group_id="grp-htn", alg="ES384")
    sandbox.reset_faults(CLIENT)


def _faults(sandbox, **faults):
    sandbox.set_faults(CLIENT, merge=True, **faults)


def test_a_group_sync_fills_the_summary(registration):
    run = sync(registration)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert run.group_name == "Hypertension clinic"  # the Group's own name, for the staff page
    rows = {row.patient_id: row for row in PatientSummary.objects.filter(ehr=registration.ehr)}
    assert {"pat-garcia", "pat-miller", "pat-brooks", "pat-synthea", "pat-ehrstyle"} <= set(rows)
    assert "pat-chen" not in rows
    assert run.patients == len(rows)
    assert run.resources > 10_000  # pat-brooks alone
    garcia = rows["pat-garcia"]
    assert garcia.name.startswith("Maria")
    assert garcia.active_problems >= 3
    assert garcia.bp_systolic is not None and garcia.bp_controlled is not None
    assert garcia.hba1c is not None
    assert garcia.last_encounter_at is not None
    # Separate 8480-6/8462-4 readings and panels are both BPs; the admission's 186/122 is not controlled.
    ehrstyle = rows["pat-ehrstyle"]
    assert ehrstyle.bp_systolic is not None and ehrstyle.bp_controlled is False
    registration.refresh_from_db()
    assert registration.since == run.transaction_time


def test_runs_again_without_duplicates(registration):
    first = sync(registration)
    count = PatientSummary.objects.count()
    again = sync(registration)  # incremental: nothing changed since the transactionTime
    assert again.status == SyncRun.Status.SUCCEEDED
    assert again.since == first.transaction_time
    assert again.resources == 0
    full = sync(registration, full=True)
    assert full.status == SyncRun.Status.SUCCEEDED
    assert PatientSummary.objects.count() == count


def test_a_429_at_kickoff_and_a_500_mid_poll_are_waited_out(registration, sandbox):
    _faults(sandbox, bulk_kickoff_status=429, bulk_kickoff_times=2, bulk_status=500, bulk_status_times=1)
    run = sync(registration)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert PatientSummary.objects.exists()


def test_an_export_error_fails_the_run_and_keeps_the_summary(registration, sandbox):
    assert sync(registration).status == SyncRun.Status.SUCCEEDED
    registration.refresh_from_db()
    since = registration.since
    _faults(sandbox, bulk_export_error=True)
    run = sync(registration, full=True)
    assert run.status == SyncRun.Status.FAILED
    assert "injected export error" in run.errors
    assert run.finished_at is not None
    registration.refresh_from_db()
    assert registration.since == since
    assert PatientSummary.objects.exists()


def test_an_expired_file_url_fails_the_run(registration, sandbox):
    _faults(sandbox, bulk_file_expired=True)
    run = sync(registration)
    assert run.status == SyncRun.Status.FAILED
    assert "HTTP 410" in run.errors
    assert not PatientSummary.objects.exists()


def test_a_refused_backend_token_fails_the_run(registration):
    registration.client_id = "not-registered"
    registration.save()
    run = sync(registration)
    assert run.status == SyncRun.Status.FAILED
    assert "invalid_client" in run.errors


def test_the_command_logs_json_and_exits_non_zero_on_failure(registration, sandbox):
    out = StringIO()
    call_command("sync_population", stdout=out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["sync_population.start", "sync_population.finish"]
    assert events[1]["status"] == "succeeded" and events[1]["patients"] > 0
    _faults(sandbox, bulk_export_error=True)
    with pytest.raises(CommandError, match="1 of 1 export"):
        call_command("sync_population", "--full", stdout=StringIO())
