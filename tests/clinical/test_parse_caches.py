"""Parsed resources are reused only for the exact same content, and readings only for the very
same parsed Observation in the same context: a reload is cheaper, never staler."""

from __future__ import annotations

import copy
import gc
import json

import requests
import responses

from clinical import fhir, reading_cache
from clinical.fhir import memo
from clinical.labs import build_labs
from clinical.readings import Person
from tests.clinical.conftest import BASE, TOKEN
from tests.clinical.test_fhir import obs, page

OTHER_BASE = "https://other-ehr.example.org/fhir"


def search(base=BASE):
    return fhir.FhirClient(base, TOKEN, session=requests.Session()).search("Observation", {"patient": "p"})


def with_meta(entry):
    entry["resource"]["meta"] = {"versionId": "1", "lastUpdated": "2024-03-12T15:00:00Z"}
    return entry


@responses.activate
def test_the_same_content_is_parsed_once_and_reused():
    responses.get(f"{BASE}/Observation", json=page([obs(1), obs(2)]))
    first, second = search(), search()
    assert [r.id for r in second.resources] == ["o1", "o2"]
    assert all(a is b for a, b in zip(first.resources, second.resources, strict=True))


@responses.activate
def test_a_changed_value_under_the_same_id_and_version_is_read_anew():
    """Nothing trusts the server to change meta.versionId: the content itself is the key."""
    before, after = with_meta(obs(1)), with_meta(obs(1))
    after["resource"]["valueQuantity"]["value"] = 140
    responses.get(f"{BASE}/Observation", json=page([before]))
    responses.get(f"{BASE}/Observation", json=page([after]))
    old, new = search().resources[0], search().resources[0]
    assert old is not new
    assert float(old.valueQuantity.value) == 61 and float(new.valueQuantity.value) == 140


@responses.activate
def test_one_servers_resource_never_answers_for_another_servers():
    responses.get(f"{BASE}/Observation", json=page([obs(1)]))
    responses.get(f"{OTHER_BASE}/Observation", json=page([obs(1)]))
    assert search().resources[0] is not search(OTHER_BASE).resources[0]


@responses.activate
def test_what_the_fast_path_declines_is_validated_every_time_and_never_kept():
    odd = obs(1)
    odd["resource"]["effectiveDateTime"] = "2024-03"  # partial date: the full model's job
    responses.get(f"{BASE}/Observation", json=page([odd]))
    first, second = search().resources[0], search().resources[0]
    assert first is not second and first.effectiveDateTime == second.effectiveDateTime
    assert len(memo.store()) == 0


@responses.activate
def test_the_cache_can_be_turned_off(settings):
    settings.FHIR_PARSED_CACHE_SIZE = 0
    responses.get(f"{BASE}/Observation", json=page([obs(1)]))
    first, second = search().resources[0], search().resources[0]
    assert first is not second and first.id == second.id == "o1"
    assert memo.store() is None


def test_it_is_bounded_by_the_settings(settings):
    settings.FHIR_PARSED_CACHE_SIZE, settings.FHIR_PARSED_CACHE_SECONDS = 3, 60
    cache = memo.store()
    assert (cache.maxsize, cache.ttl) == (3, 60)
    for i in range(5):
        memo.parse(obs(i)["resource"], "Observation", BASE, cache)
    assert len(cache) == 3


def test_equal_content_gives_the_same_key_whatever_objects_it_shares():
    decoded = json.loads(json.dumps(obs(1)["resource"]))
    shared_code = "8867-4"
    rebuilt = copy.deepcopy(decoded)
    rebuilt["code"]["coding"][0]["code"] = shared_code  # the same string object held twice
    rebuilt["id"] = "o1"
    assert memo.content_key(decoded) == memo.content_key(rebuilt)
    assert memo.content_key({"v": 1}) != memo.content_key({"v": 1.0}) != memo.content_key({"v": True})
    assert memo.content_key({"a": 1, "b": 2}) != memo.content_key({"b": 2, "a": 1})
    assert memo.content_key(["not", "an", "object"]) is None


# --- readings ----------------------------------------------------------------------------------


def lab(value):
    return memo.parse(
        {
            "resourceType": "Observation",
            "id": "k1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "effectiveDateTime": "2024-03-12T14:05:00Z",
            "valueQuantity": {"value": value, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
            "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.1}}],
        },
        "Observation",
        BASE,
        memo.store(),
    )


def test_a_reading_is_built_once_per_observation_and_context(monkeypatch):
    calls = []
    build = reading_cache.remembered

    def counting(obs, context, fn, *args):
        return build(obs, context, lambda *a: (calls.append(context), fn(*a))[1], *args)

    monkeypatch.setattr("clinical.labs.remembered", counting)
    adult = Person.of(type("P", (), {"birthDate": "1960-01-01", "gender": "female"})())
    first = build_labs([lab(5.9)], "enc-1", adult)[0].latest
    again = build_labs([lab(5.9)], "enc-1", adult)[0].latest  # the memo hands back the same object
    assert again is first and len(calls) == 1
    other_encounter = build_labs([lab(5.9)], "enc-2", adult)[0].latest
    assert len(calls) == 2 and other_encounter.in_encounter is False
    assert first.flag.level == "high" and first.value == "5.9"


def test_a_new_value_never_gets_an_old_reading():
    high, low = build_labs([lab(5.9)], "")[0].latest, build_labs([lab(2.9)], "")[0].latest
    assert (high.value, high.flag.level) == ("5.9", "high")
    assert (low.value, low.flag.level) == ("2.9", "low")


def test_readings_go_when_their_observation_goes(settings):
    settings.FHIR_PARSED_CACHE_SIZE = 0  # nothing keeps the Observation alive
    obs = lab(5.9)
    reading_cache.remembered(obs, "ctx", lambda o: "reading")
    assert reading_cache.remembered(obs, "ctx", lambda o: "rebuilt") == "reading"
    key = id(obs)
    assert key in reading_cache._entries
    del obs
    gc.collect()
    assert key not in reading_cache._entries


def test_changing_a_clinical_setting_forgets_every_reading(settings):
    obs = lab(5.9)
    reading_cache.remembered(obs, "ctx", lambda o: "before")
    settings.CLINICAL_HR_RANGE = "40,110"
    assert reading_cache.remembered(obs, "ctx", lambda o: "after") == "after"
