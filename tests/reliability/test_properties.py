"""Property tests (hypothesis): scope parsing and conversion, launch and callback parameters, and
FHIR parsing of generated resources never let an exception escape (and never answer 500)."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical import banner, fhir, labs, problems, vitals
from clinical.fhir import client as fhir_client
from smartapp import authorize, discovery, scopes
from tests.reliability.conftest import ISS

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LEVELS = st.sampled_from(["patient", "user", "system", "launch", "Patient", ""])
TYPES = st.sampled_from(["Patient", "Observation", "Condition", "Encounter", "*", "observation", "X"])
PERMS = st.one_of(
    st.sampled_from(["read", "write", "*", "rs", "cruds", "r", "s", "cud", "", "sr", "xyz"]),
    st.text(alphabet="cruds*readwit", max_size=6),
)
QUERY = st.one_of(st.just(""), st.builds(lambda q: "?" + q, st.text(max_size=30)))
RESOURCE_SCOPE = st.builds(lambda lv, t, p, q: f"{lv}/{t}.{p}{q}", LEVELS, TYPES, PERMS, QUERY)
ANY_SCOPE = st.one_of(RESOURCE_SCOPE, st.text(max_size=40), st.sampled_from(["openid", "fhirUser", "launch"]))


def _config(*capabilities: str) -> discovery.SmartConfig:
    return discovery.SmartConfig(
        issuer=ISS,
        authorization_endpoint=ISS + "/a",
        token_endpoint=ISS + "/t",
        capabilities=list(capabilities),
    )


@FAST
@given(st.lists(ANY_SCOPE, max_size=8), TYPES, st.sampled_from(["read", "search"]))
def test_it_checks_any_granted_scope_set_without_raising(granted, resource_type, interaction):
    grant = scopes.check(granted, resource_type, interaction, params={"category": "laboratory"})
    assert isinstance(grant.allowed, bool)
    if not granted:
        assert not grant.allowed


@FAST
@given(st.sampled_from(["patient", "user"]), st.sampled_from(["Patient", "Observation", "Condition"]))
def test_it_allows_reads_and_searches_for_a_plain_v2_rs_scope(level, resource_type):
    for interaction in ("read", "search"):
        assert scopes.check(
            [f"{level}/{resource_type}.rs"], resource_type, interaction, levels=(level,)
        ).allowed


@FAST
@given(st.lists(ANY_SCOPE, max_size=10))
def test_it_converts_scopes_to_v1_idempotently_without_duplicates(requested):
    raw = " ".join(s for s in requested if s.strip())
    v1_only = _config("permission-v1")
    once = authorize.scopes_for(raw, v1_only)
    assert authorize.scopes_for(once, v1_only) == once
    tokens = once.split()
    assert len(tokens) == len(set(tokens)) <= len(raw.split())
    for token in tokens:
        prefix, _, rest = token.partition("/")
        if prefix in ("patient", "user", "system") and "." in rest:
            assert "?" not in rest.partition(".")[2]  # v1 has no granular scopes


@FAST
@given(st.lists(ANY_SCOPE, max_size=10))
def test_it_keeps_v2_scopes_as_requested_apart_from_whitespace(requested):
    raw = "  ".join(requested)
    assert authorize.scopes_for(raw, _config("permission-v2")).split() == raw.split()


PARAM_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80)


@FAST
@given(
    st.one_of(st.just(ISS), st.just(ISS + "/"), PARAM_TEXT),
    st.one_of(PARAM_TEXT, st.text(min_size=2000, max_size=2100)),
    st.dictionaries(PARAM_TEXT, PARAM_TEXT, max_size=3),
)
def test_it_never_answers_500_to_any_launch_query(client, smart_ehr, iss, launch, extra):
    response = client.get("/launch", {**extra, "iss": iss, "launch": launch})
    assert response.status_code in (302, 400, 502)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["state", "code", "error", "iss", "error_description", "session_state"]),
        PARAM_TEXT,
        max_size=5,
    )
)
def test_it_never_answers_500_to_any_callback_query(client, smart_ehr, params):
    response = client.get("/callback", params)
    assert response.status_code in (302, 400, 401, 403, 502)
    assert response.status_code != 302  # no pending state in this session: never a launch


# --- FHIR parsing -----------------------------------------------------------------------------

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
CODING = st.fixed_dictionaries(
    {
        "system": st.sampled_from(["http://loinc.org", "http://snomed.info/sct", "urn:x"]),
        "code": st.text(max_size=8),
    },
    optional={"display": st.text(max_size=20)},
)
CONCEPT = st.fixed_dictionaries(
    {}, optional={"coding": st.lists(CODING, max_size=2), "text": st.text(max_size=20)}
)
DATE = st.one_of(
    st.dates(date(1900, 1, 1), date(2030, 1, 1)).map(str),
    st.sampled_from(["2024", "2024-03", "2024-03-12T14:05:00Z", "31/02/1999", ""]),
)
QUANTITY = st.fixed_dictionaries(
    {"value": st.one_of(st.integers(-500, 500), st.floats(-1e6, 1e6, allow_nan=False))},
    optional={"unit": st.text(max_size=8), "code": st.sampled_from(["mm[Hg]", "/min", "Cel", "%"])},
)
OBSERVATION = st.fixed_dictionaries(
    {
        "resourceType": st.just("Observation"),
        "status": st.sampled_from(["final", "amended", "entered-in-error", "bad"]),
        "code": CONCEPT,
    },
    optional={
        "id": st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True),
        "effectiveDateTime": DATE,
        "valueQuantity": QUANTITY,
        "valueString": st.text(max_size=30),
        "interpretation": st.lists(CONCEPT, max_size=2),
        "referenceRange": st.lists(
            st.fixed_dictionaries(
                {}, optional={"low": QUANTITY, "high": QUANTITY, "text": st.text(max_size=10)}
            ),
            max_size=2,
        ),
        "component": st.lists(
            st.fixed_dictionaries({"code": CONCEPT}, optional={"valueQuantity": QUANTITY}), max_size=3
        ),
        "encounter": st.fixed_dictionaries({"reference": st.text(max_size=20)}),
        "vendorExtra": JSON_ANY,
    },
)
CONDITION = st.fixed_dictionaries(
    {"resourceType": st.just("Condition"), "subject": st.just({"reference": "Patient/pat-1"})},
    optional={
        "code": CONCEPT,
        "clinicalStatus": CONCEPT,
        "verificationStatus": CONCEPT,
        "onsetDateTime": DATE,
        "recordedDate": DATE,
    },
)
PATIENT = st.fixed_dictionaries(
    {"resourceType": st.just("Patient")},
    optional={
        "name": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "family": st.text(max_size=20),
                    "given": st.lists(st.text(max_size=10), max_size=2),
                    "use": st.sampled_from(["official", "old", "nickname"]),
                },
            ),
            max_size=2,
        ),
        "gender": st.sampled_from(["female", "male", "other", "unknown", "robot"]),
        "birthDate": DATE,
        "identifier": st.lists(
            st.fixed_dictionaries({"value": st.text(max_size=10)}, optional={"type": CONCEPT}), max_size=2
        ),
    },
)


def _parse(data, resource_type):
    try:
        return fhir.parse_resource(data, resource_type)
    except ValueError:
        return None  # the documented refusal


@FAST
@given(
    st.one_of(OBSERVATION, JSON_ANY), st.sampled_from(["Observation", "Patient", "Condition", "Encounter"])
)
def test_it_parses_or_refuses_any_json_as_a_resource(data, resource_type):
    _parse(data, resource_type)


@FAST
@given(st.lists(OBSERVATION, max_size=6))
def test_it_builds_vitals_and_labs_from_any_parsable_observations(raw):
    parsed = tuple(r for r in (_parse(o, "Observation") for o in raw) if r is not None)
    vitals.build_vitals(parsed, "enc-1")
    labs.build_labs(parsed, "enc-1")


@FAST
@given(st.lists(CONDITION, max_size=6))
def test_it_builds_the_problem_list_from_any_parsable_conditions(raw):
    parsed = tuple(r for r in (_parse(c, "Condition") for c in raw) if r is not None)
    active, inactive, _in_error = problems.build_problems(parsed)
    assert len(active) + len(inactive) <= len(parsed)


@FAST
@given(PATIENT)
def test_it_builds_a_banner_from_any_parsable_patient(raw):
    patient = _parse(raw, "Patient")
    if patient is not None:
        built = banner.build_banner(patient, "pat-1", date(2024, 3, 12))
        assert isinstance(built.name, str)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "x",
        {"resourceType": "Bundle", "entry": "nope"},
        {"resourceType": "Bundle", "entry": [None, 1, {"resource": []}]},
    ],
)
def test_it_collects_nothing_from_junk_bundles(body):
    client = fhir.FhirClient(ISS, "t")
    acc = fhir_client._Paging()
    if isinstance(body, dict):
        page = fhir.read_page(io.BytesIO(json.dumps(body).encode()), "Observation", 100)
        client._collect(page, "Observation", acc)
        assert acc.resources == []
    else:
        assert fhir_client._next_link({"link": body}, ISS) is None
