"""Bulk Data $export of the sandbox over HTTP: Groups, kick-off, status, files, cancel, faults."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.sandbox.flows import REDIRECT, assertion

CLIENT = "bulk-app"
SCOPE = "system/Patient.rs system/Observation.rs system/Condition.rs system/Encounter.rs"


@pytest.fixture(scope="module")
def bulk_client(sandbox, jwks_url):
    sandbox.register_client({"client_id": CLIENT, "jwks_url": jwks_url, "redirect_uris": [REDIRECT]})
    return CLIENT


@pytest.fixture
def token(sandbox, bulk_client, keys) -> str:
    sandbox.reset_faults(CLIENT)
    kid, key = keys["ES384"]
    data = {
        "grant_type": "client_credentials",
        "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, kid, "ES384", sandbox.token_url, client_id=CLIENT),
    }
    body = requests.post(sandbox.token_url, data=data, timeout=10).json()
    yield body["access_token"]
    sandbox.reset_faults(CLIENT)


def _get(url: str, token: str, **kwargs) -> requests.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/fhir+json",
        **kwargs.pop("headers", {}),
    }
    return requests.get(url, headers=headers, timeout=30, **kwargs)


def _kickoff(sandbox, token, path="Group/grp-htn/$export", **params) -> requests.Response:
    return _get(f"{sandbox.fhir_base}/{path}", token, params=params, headers={"Prefer": "respond-async"})


def _finish(status_url: str, token: str) -> dict:
    for _ in range(20):
        resp = _get(status_url, token, headers={"Accept": "application/json"})
        if resp.status_code == 200:
            return resp.json()
        assert resp.status_code == 202
        time.sleep(float(resp.headers.get("Retry-After", "0")))
    raise AssertionError("export never finished")


def _ndjson(url: str, token: str) -> list[dict]:
    resp = _get(url, token, headers={"Accept": "application/fhir+ndjson"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/fhir+ndjson")
    return [json.loads(line) for line in resp.text.splitlines() if line]


def test_it_serves_the_clinic_groups(sandbox, token):
    body = _get(f"{sandbox.fhir_base}/Group/grp-htn", token).json()
    members = {m["entity"]["reference"] for m in body["member"]}
    assert body["name"] == "Hypertension clinic"
    assert {"Patient/pat-garcia", "Patient/pat-miller", "Patient/pat-brooks"} <= members
    assert "Patient/pat-chen" not in members
    diabetes = _get(f"{sandbox.fhir_base}/Group/grp-dm", token).json()
    assert "Patient/pat-garcia" in {m["entity"]["reference"] for m in diabetes["member"]}
    assert _get(f"{sandbox.fhir_base}/Group/nope", token).status_code == 404


def test_a_group_export_runs_to_a_manifest_and_ndjson_files(sandbox, token):
    sandbox.set_faults(CLIENT, bulk_polls=2, bulk_retry_after=0)
    kick = _kickoff(sandbox, token, _type="Patient,Condition")
    assert kick.status_code == 202
    status_url = kick.headers["Content-Location"]
    first = _get(status_url, token)
    assert first.status_code == 202
    assert first.headers["X-Progress"] == "0% complete"
    assert first.headers["Retry-After"] == "0"
    manifest = _finish(status_url, token)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("_type=Patient%2CCondition") or "_type=" in manifest["request"]
    assert manifest["transactionTime"].endswith("Z")
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Condition"}
    patients_file = next(o for o in manifest["output"] if o["type"] == "Patient")
    patients = _ndjson(patients_file["url"], token)
    assert len(patients) == patients_file["count"]
    assert "pat-chen" not in {p["id"] for p in patients}
    assert "pat-garcia" in {p["id"] for p in patients}
    conditions = _ndjson(next(o["url"] for o in manifest["output"] if o["type"] == "Condition"), token)
    ids = {p["id"] for p in patients}
    assert all(c["subject"]["reference"].removeprefix("Patient/") in ids for c in conditions)


def test_files_need_the_token(sandbox, token):
    manifest = _finish(_kickoff(sandbox, token, _type="Patient").headers["Content-Location"], token)
    url = manifest["output"][0]["url"]
    assert requests.get(url, timeout=10).status_code == 401


def test_a_patient_export_covers_every_patient(sandbox, token):
    manifest = _finish(
        _kickoff(sandbox, token, "Patient/$export", _type="Patient").headers["Content-Location"], token
    )
    patients = _ndjson(manifest["output"][0]["url"], token)
    assert {"pat-chen", "pat-garcia", "pat-synthea"} <= {p["id"] for p in patients}


def test_since_limits_the_export_to_later_changes(sandbox, token):
    manifest = _finish(_kickoff(sandbox, token, _type="Patient").headers["Content-Location"], token)
    later = _kickoff(sandbox, token, _type="Patient", _since=manifest["transactionTime"])
    assert _finish(later.headers["Content-Location"], token)["output"] == []
    earlier = _kickoff(sandbox, token, _type="Patient", _since="2000-01-01T00:00:00Z")
    assert _finish(earlier.headers["Content-Location"], token)["output"]


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({"_type": "Medication"}, {"Prefer": "respond-async"}, 400),
        ({"_outputFormat": "text/csv"}, {"Prefer": "respond-async"}, 400),
        ({"_since": "yesterday"}, {"Prefer": "respond-async"}, 400),
        ({}, {}, 400),
    ],
)
def test_bad_kickoffs_get_an_operation_outcome(sandbox, token, params, headers, status):
    resp = _get(f"{sandbox.fhir_base}/Group/grp-htn/$export", token, params=params, headers=headers)
    assert resp.status_code == status
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_a_patient_scope_cannot_export(sandbox):
    from tests.sandbox.flows import token_for

    patient_token = token_for(sandbox)["access_token"]
    assert _kickoff(sandbox, patient_token).status_code == 403


def test_delete_cancels_the_export(sandbox, token):
    status_url = _kickoff(sandbox, token).headers["Content-Location"]
    assert (
        requests.delete(status_url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
        == 202
    )
    gone = _get(status_url, token)
    assert gone.status_code == 404
    assert gone.json()["resourceType"] == "OperationOutcome"


def test_fault_429_on_kickoff_has_retry_after(sandbox, token):
    sandbox.set_faults(CLIENT, bulk_kickoff_status=429, bulk_kickoff_times=1, bulk_retry_after=3)
    first = _kickoff(sandbox, token)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert _kickoff(sandbox, token).status_code == 202


def test_fault_500_mid_poll_then_recovery(sandbox, token):
    status_url = _kickoff(sandbox, token, _type="Patient").headers["Content-Location"]
    sandbox.set_faults(CLIENT, bulk_status=500, bulk_status_times=1, bulk_retry_after=0)
    failed = _get(status_url, token)
    assert failed.status_code == 500
    assert failed.json()["issue"][0]["code"] == "transient"
    assert _finish(status_url, token)["output"]


def test_fault_export_error(sandbox, token):
    sandbox.set_faults(CLIENT, bulk_export_error=True)
    status_url = _kickoff(sandbox, token).headers["Content-Location"]
    failed = _get(status_url, token)
    assert failed.status_code == 500
    assert failed.json()["issue"][0]["code"] == "exception"


def test_fault_expired_file_url(sandbox, token):
    manifest = _finish(_kickoff(sandbox, token, _type="Patient").headers["Content-Location"], token)
    sandbox.set_faults(CLIENT, bulk_file_expired=True)
    assert _get(manifest["output"][0]["url"], token).status_code == 410
