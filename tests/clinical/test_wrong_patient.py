"""Never the wrong patient: search entries about another patient are dropped and said so."""

from __future__ import annotations

import copy

import pytest
import responses

from tests.clinical.conftest import load
from tests.clinical.helpers import register_all

pytestmark = pytest.mark.django_db


@responses.activate
def test_it_drops_entries_for_another_patient_that_an_ehr_returned(client, make_launch, own):
    launch = make_launch()
    own(launch)
    conditions = load("conditions")
    stranger = copy.deepcopy(conditions["entry"][0])
    stranger["resource"].update(
        id="c-other",
        subject={"reference": "https://ehr.example.org/fhir/Patient/someone-else"},
        clinicalStatus={"coding": [{"code": "active"}]},
        code={"text": "Condition of another patient"},
    )
    conditions["entry"].append(stranger)
    register_all(responses, conditions=conditions)
    html = client.get(f"/c/{launch.handle}/").content.decode()
    assert "Condition of another patient" not in html
    assert "1 entries for another patient were returned by the EHR and are not shown." in html
    assert "Type 2 diabetes" in html  # this patient's own problems still show
