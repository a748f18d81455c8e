"""Fixtures for the clinical dashboard: recorded FHIR JSON, a launch owned by the test client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from smartapp.models import Launch
from smartapp.session import new_handle, remember_launch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir"
BASE = "https://ehr.example.org/fhir"
TOKEN = "access-token-SECRET-123"

ALL_SCOPES = (
    "launch openid fhirUser online_access patient/Patient.rs patient/Encounter.rs "
    "patient/Observation.rs patient/Condition.rs"
)


def load(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))


@pytest.fixture
def fhir_json():
    return load


@pytest.fixture
def make_launch(ehr):
    def make(**overrides) -> Launch:
        values = {
            "handle": new_handle(),
            "ehr": ehr,
            "kind": Launch.Kind.EHR,
            "access_token": TOKEN,
            "scope": ALL_SCOPES,
            "patient_id": "pat-1",
            "encounter_id": "enc-1",
            "fhir_user": "Practitioner/pr-1",
        }
        values.update(overrides)
        return Launch.objects.create(**values)

    return make


@pytest.fixture
def own(client):
    """Give the test client's session ownership of a launch."""

    def give(launch: Launch) -> None:
        session = client.session
        remember_launch(SimpleNamespace(session=session), launch)
        session.save()

    return give
