"""FHIR API conformance: auth errors, scopes, compartments, search parameters, paging."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.flows import fhir, token_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def garcia(sandbox) -> str:
    return token_for(sandbox, scope="launch/patient patient/*.rs")["access_token"]


@pytest.fixture(scope="module")
def clinician(sandbox) -> str:
    return token_for(sandbox, scope="openid fhirUser user/*.read")["access_token"]


def _outcome(resp: requests.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body


def test_it_serves_metadata_with_the_smart_oauth_uris_extension(sandbox):
    body = requests.get(sandbox.fhir_base + "/metadata", timeout=10).json()
    assert body["fhirVersion"] == "4.0.1"
    ext = body["rest"][0]["security"]["extension"][0]
    assert ext["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris["token"] == sandbox.token_url
    assert uris["authorize"] == sandbox.authorize_url


def test_it_publishes_the_smart_configuration(sandbox):
    conf = requests.get(sandbox.fhir_base + "/.well-known/smart-configuration", timeout=10).json()
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert conf["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert set(conf["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-ehr-encounter",
        "context-standalone-patient",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "sso-openid-connect",
        "authorize-post",
    ):
        assert capability in conf["capabilities"]
    for key in (
        "issuer",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "scopes_supported",
        "response_types_supported",
        "grant_types_supported",
    ):
        assert conf[key]
    assert requests.get(conf["jwks_uri"], timeout=5).json()["keys"][0]["kty"] == "RSA"


def test_it_answers_401_with_a_bearer_challenge(sandbox):
    resp = requests.get(sandbox.fhir_base + "/Patient/pat-garcia", timeout=10)
    _outcome(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    bad = fhir(sandbox, "Patient/pat-garcia", "not-a-token")
    _outcome(bad, 401)
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_it_reads_within_the_patient_compartment_only(sandbox, garcia):
    assert fhir(sandbox, "Patient/pat-garcia", garcia).json()["id"] == "pat-garcia"
    _outcome(fhir(sandbox, "Patient/pat-chen", garcia), 403)
    _outcome(fhir(sandbox, "Patient/does-not-exist", garcia), 404)
    _outcome(fhir(sandbox, "Medication/x", garcia), 404)
    obs = fhir(sandbox, "Observation", garcia, patient="pat-chen").json()
    assert obs["total"] == 0
    mine = fhir(sandbox, "Observation", garcia, _count="5").json()
    assert mine["total"] > 0
    assert {e["resource"]["subject"]["reference"] for e in mine["entry"]} == {"Patient/pat-garcia"}


def test_it_enforces_resource_types_from_v1_and_v2_scopes(sandbox):
    token = token_for(sandbox, scope="launch/patient patient/Patient.read patient/Observation.rs")[
        "access_token"
    ]
    assert fhir(sandbox, "Patient/pat-garcia", token).status_code == 200
    assert fhir(sandbox, "Observation", token, _count="1").status_code == 200
    forbidden = fhir(sandbox, "Condition", token)
    _outcome(forbidden, 403)
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    read_only = token_for(sandbox, scope="launch/patient patient/Observation.r")["access_token"]
    _outcome(fhir(sandbox, "Observation", read_only), 403)


def test_it_applies_granular_scope_queries(sandbox):
    scope = (
        "launch/patient patient/Observation.rs?category="
        "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
    )
    token = token_for(sandbox, scope=scope)["access_token"]
    body = fhir(sandbox, "Observation", token, _count="200").json()
    cats = {e["resource"]["category"][0]["coding"][0]["code"] for e in body["entry"]}
    assert cats == {"vital-signs"}


def test_it_searches_by_code_category_date_and_sorts(sandbox, clinician):
    body = fhir(
        sandbox,
        "Observation",
        clinician,
        patient="Patient/pat-garcia",
        code="http://loinc.org|85354-9",
        date="ge2022-01-01",
        _sort="-date",
        _count="50",
    ).json()
    dates = [e["resource"]["effectiveDateTime"] for e in body["entry"]]
    assert dates and dates == sorted(dates, reverse=True)
    assert all(d >= "2022-01-01" for d in dates)
    assert all(len(e["resource"]["component"]) == 2 for e in body["entry"])
    labs = fhir(
        sandbox, "Observation", clinician, subject="pat-garcia", category="laboratory", _count="5"
    ).json()
    assert {e["resource"]["category"][0]["coding"][0]["code"] for e in labs["entry"]} == {"laboratory"}
    lt = fhir(sandbox, "Observation", clinician, patient="pat-garcia", date="lt2022", _count="200").json()
    assert all(e["resource"]["effectiveDateTime"] < "2022" for e in lt["entry"])
    assert (
        lt["total"]
        + fhir(sandbox, "Observation", clinician, patient="pat-garcia", date="ge2022", _count="0").json()[
            "total"
        ]
        == fhir(sandbox, "Observation", clinician, patient="pat-garcia", _count="0").json()["total"]
    )


def test_it_searches_conditions_and_encounters(sandbox, clinician):
    active = fhir(sandbox, "Condition", clinician, patient="pat-chen", **{"clinical-status": "active"}).json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in active["entry"]] == ["55822004"]
    icd = fhir(sandbox, "Condition", clinician, code="http://hl7.org/fhir/sid/icd-10-cm|I10").json()
    assert icd["total"] >= 3
    encounters = fhir(sandbox, "Encounter", clinician, patient="pat-chen", _sort="-date").json()
    classes = {e["resource"]["class"]["code"] for e in encounters["entry"]}
    assert classes == {"AMB", "IMP", "EMER"}
    by_enc = fhir(sandbox, "Observation", clinician, encounter="Encounter/enc-chen-current").json()
    assert by_enc["total"] == 8
    by_id = fhir(sandbox, "Patient", clinician, _id="pat-odd,pat-xss").json()
    assert by_id["total"] == 2


def test_it_answers_bad_searches_with_400(sandbox, clinician):
    _outcome(fhir(sandbox, "Observation", clinician, date="yesterday"), 400)
    _outcome(fhir(sandbox, "Observation", clinician, _count="ten"), 400)
    _outcome(fhir(sandbox, "Observation", clinician, _sort="value"), 400)
    strict = requests.get(
        sandbox.fhir_base + "/Observation",
        params={"bogus": "1"},
        timeout=10,
        headers={"Authorization": f"Bearer {clinician}", "Prefer": "handling=strict"},
    )
    _outcome(strict, 400)
    assert fhir(sandbox, "Observation", clinician, bogus="1", _count="1").status_code == 200


def test_it_pages_the_10k_patient_completely_with_next_links(sandbox, clinician):
    # Page speed is measured by the benchmark (bench/), not asserted here.
    url = f"{sandbox.fhir_base}/Observation?patient=pat-brooks&_count=200"
    headers = {"Authorization": f"Bearer {clinician}"}
    seen: set[str] = set()
    pages = 0
    while url and pages < 100:
        body = requests.get(url, headers=headers, timeout=10).json()
        pages += 1
        assert body["type"] == "searchset"
        seen.update(e["resource"]["id"] for e in body.get("entry", []))
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    assert body["total"] >= 10_000
    assert len(seen) == body["total"]
    assert pages == -(-body["total"] // 200)


def test_it_serves_the_empty_and_the_odd_patients(sandbox, clinician):
    assert fhir(sandbox, "Observation", clinician, patient="pat-blank").json()["total"] == 0
    odd = fhir(sandbox, "Observation", clinician, patient="pat-odd").json()
    resources = {e["resource"]["id"]: e["resource"] for e in odd["entry"]}
    assert resources["obs-odd-text"]["valueString"]
    assert "effectiveDateTime" not in resources["obs-odd-nodate"]
    assert resources["obs-odd-error"]["status"] == "entered-in-error"
    xss = fhir(sandbox, "Patient/pat-xss", clinician).json()
    assert xss["name"][0]["given"] == ["<script>alert(1)</script>"]


def test_it_supports_search_via_post(sandbox, clinician):
    resp = requests.post(
        sandbox.fhir_base + "/Patient/_search",
        data={"_id": "pat-chen"},
        timeout=10,
        headers={"Authorization": f"Bearer {clinician}"},
    )
    assert resp.json()["entry"][0]["resource"]["id"] == "pat-chen"
