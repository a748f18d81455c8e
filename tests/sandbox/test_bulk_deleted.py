"""The sandbox's `deleted` and `error` files, and kick-offs narrowed to patients, over HTTP.

Its own sandbox (deletions are permanent), started from the same seeded template.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from tests.sandbox.conftest import ANCHOR
from tests.sandbox.flows import REDIRECT, assertion
from tests.sandbox_server import SandboxServer, start_sandbox

CLIENT = "bulk-deleted-app"
SCOPE = "system/Patient.rs system/Observation.rs system/Condition.rs system/Encounter.rs"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, jwks_url) -> Iterator[SandboxServer]:
    client = {"client_id": CLIENT, "jwks_url": jwks_url, "redirect_uris": [REDIRECT]}
    db = tmp_path_factory.mktemp("sandbox-deleted") / "sandbox.sqlite3"
    with start_sandbox(db, [client], anchor=ANCHOR) as server:
        yield server


@pytest.fixture
def token(sandbox, keys) -> Iterator[str]:
    sandbox.reset_faults(CLIENT)
    sandbox.set_faults(CLIENT, bulk_retry_after=0)
    kid, key = keys["ES384"]
    data = {
        "grant_type": "client_credentials",
        "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, kid, "ES384", sandbox.token_url, client_id=CLIENT),
    }
    yield requests.post(sandbox.token_url, data=data, timeout=10).json()["access_token"]
    sandbox.reset_faults(CLIENT)


def _call(method: str, url: str, token: str, **kwargs) -> requests.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/fhir+json",
        **kwargs.pop("headers", {}),
    }
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def _export(sandbox, token, path="Group/grp-htn/$export", *, body=None, **params) -> dict:
    """Kick off (GET, or POST with a Parameters body), poll to the manifest."""
    url = f"{sandbox.fhir_base}/{path}"
    kick = _call(
        "POST" if body else "GET", url, token, params=params, json=body, headers={"Prefer": "respond-async"}
    )
    assert kick.status_code == 202, kick.text
    for _ in range(20):
        status = _call("GET", kick.headers["Content-Location"], token, headers={"Accept": "application/json"})
        if status.status_code == 200:
            return status.json()
        time.sleep(0.05)
    raise AssertionError("export never finished")


def _ndjson(url: str, token: str) -> list[dict]:
    resp = _call("GET", url, token, headers={"Accept": "application/fhir+ndjson"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/fhir+ndjson")
    return [json.loads(line) for line in resp.text.splitlines() if line]


def _deleted(manifest: dict, token: str) -> list[str]:
    refs = []
    for item in manifest.get("deleted", []):
        assert item["type"] == "Bundle"
        for bundle in _ndjson(item["url"], token):
            assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
            assert bundle["entry"]
            for entry in bundle["entry"]:
                assert entry["request"]["method"] == "DELETE"
                refs.append(entry["request"]["url"])
    return refs


def _observation_of(sandbox, token, patient: str) -> str:
    manifest = _export(sandbox, token, "Patient/$export", _type="Observation")
    for item in manifest["output"]:
        for obs in _ndjson(item["url"], token):
            if obs["subject"]["reference"] == f"Patient/{patient}":
                return obs["id"]
    raise AssertionError(f"no Observation of {patient}")


def test_a_deleted_observation_is_listed_in_since_exports_only(sandbox, token):
    oid = _observation_of(sandbox, token, "pat-miller")
    before = _export(sandbox, token)["transactionTime"]
    assert sandbox.delete_resource(f"Observation/{oid}") == [f"Observation/{oid}"]
    assert _call("GET", f"{sandbox.fhir_base}/Observation/{oid}", token).status_code == 404
    manifest = _export(sandbox, token, _since=before)
    assert _deleted(manifest, token) == [f"Observation/{oid}"]
    assert all(item["type"] != "Observation" for item in manifest["output"])  # nothing else changed
    assert "deleted" not in _export(sandbox, token)  # no _since: nothing to say about deletions
    later = _export(sandbox, token, _since=manifest["transactionTime"])
    assert _deleted(later, token) == []  # deleted before that _since
    assert _deleted(_export(sandbox, token, _since=before, _type="Patient,Condition"), token) == []


def test_a_deleted_patient_takes_its_compartment_and_stays_in_its_groups_exports(sandbox, token):
    before = _export(sandbox, token)["transactionTime"]
    gone = sandbox.delete_resource("Patient/pat-garcia")
    assert "Patient/pat-garcia" in gone and len(gone) > 10
    assert any(ref.startswith("Condition/") for ref in gone)
    for path in ("Group/grp-htn/$export", "Group/grp-dm/$export", "Patient/$export"):
        assert sorted(_deleted(_export(sandbox, token, path, _since=before), token)) == sorted(gone)
    patients = _export(sandbox, token, _type="Patient")["output"][0]["url"]
    assert "pat-garcia" not in {p["id"] for p in _ndjson(patients, token)}
    resp = requests.post(
        f"{sandbox.base_url}/_sandbox/delete", json={"resource": "Patient/pat-garcia"}, timeout=10
    )
    assert resp.status_code == 404


def test_deletions_of_patients_outside_the_group_are_not_listed(sandbox, token):
    before = _export(sandbox, token)["transactionTime"]
    oid = _observation_of(sandbox, token, "pat-chen")  # not in the hypertension clinic
    sandbox.delete_resource(f"Observation/{oid}")
    assert f"Observation/{oid}" not in _deleted(_export(sandbox, token, _since=before), token)
    assert f"Observation/{oid}" in _deleted(_export(sandbox, token, "Patient/$export", _since=before), token)


@pytest.mark.parametrize("body", [{}, {"resource": "Patient"}, {"resource": "Patient/a/b"}, {"resource": 3}])
def test_the_delete_endpoint_wants_a_reference(sandbox, body):
    resp = requests.post(f"{sandbox.base_url}/_sandbox/delete", json=body, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_the_error_file_fault(sandbox, token):
    sandbox.set_faults(CLIENT, merge=True, bulk_error_codes=["not-found", "not-found", "processing"])
    manifest = _export(sandbox, token, _type="Patient")
    assert manifest["output"]  # the data are still there: a partial success is a 200
    [item] = manifest["error"]
    assert item["type"] == "OperationOutcome"
    outcomes = _ndjson(item["url"], token)
    assert [o["issue"][0]["code"] for o in outcomes] == ["not-found", "not-found", "processing"]
    assert all(
        o["resourceType"] == "OperationOutcome" and o["issue"][0]["severity"] == "error" for o in outcomes
    )
    assert requests.get(item["url"], timeout=10).status_code == 401  # the token is needed, as for data


def _parameters(*patients: str, types: str = "Patient,Observation") -> dict:
    refs = [{"name": "patient", "valueReference": {"reference": f"Patient/{p}"}} for p in patients]
    return {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": types}, *refs]}


def test_a_post_kickoff_narrowed_to_patients(sandbox, token):
    manifest = _export(sandbox, token, body=_parameters("pat-miller", "pat-brooks"))
    subjects = set()
    for item in manifest["output"]:
        for resource in _ndjson(item["url"], token):
            subjects.add(
                resource["id"] if item["type"] == "Patient" else resource["subject"]["reference"][8:]
            )
    assert subjects == {"pat-miller", "pat-brooks"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_parameters("pat-chen"), "invalid"),  # not in the group
        (_parameters("pat-nobody"), "invalid"),
        ({"resourceType": "Bundle"}, "invalid"),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "patient", "valueString": "pat-miller"}]},
            "invalid",
        ),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "_typeFilter", "valueString": "x"}]},
            "not-supported",
        ),
    ],
)
def test_bad_post_kickoffs(sandbox, token, body, code):
    resp = _call(
        "POST",
        f"{sandbox.fhir_base}/Group/grp-htn/$export",
        token,
        json=body,
        headers={"Prefer": "respond-async"},
    )
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["code"] == code


def test_patient_is_a_post_parameter_only_and_can_be_refused_by_a_fault(sandbox, token):
    url = f"{sandbox.fhir_base}/Group/grp-htn/$export"
    get = _call(
        "GET", url, token, params={"patient": "Patient/pat-miller"}, headers={"Prefer": "respond-async"}
    )
    assert get.status_code == 400
    sandbox.set_faults(CLIENT, merge=True, bulk_no_patient_param=True)
    post = _call("POST", url, token, json=_parameters("pat-miller"), headers={"Prefer": "respond-async"})
    assert post.status_code == 400 and post.json()["issue"][0]["code"] == "not-supported"
