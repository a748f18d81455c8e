"""Units are shown as people read them, whether the EHR sent a UCUM code or a display unit."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.quantity import Quantity

from clinical.readings import quantity_unit


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [
        ({"value": 120, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "mmHg"),
        ({"value": 36.6, "unit": "Cel", "code": "Cel"}, "°C"),
        ({"value": 36.6, "code": "Cel"}, "°C"),
        ({"value": 25.1, "unit": "kg/m2"}, "kg/m²"),
        ({"value": 120, "unit": "mmHg", "code": "mm[Hg]"}, "mmHg"),
        ({"value": 7.5, "unit": "hours"}, "hours"),
        ({"value": 204, "unit": "10*3/uL", "code": "10*3/uL"}, "×10³/µL"),
        ({"value": 3, "code": "1"}, ""),
    ],
)
def test_it_shows_a_readable_unit(quantity, shown):
    assert quantity_unit(Quantity.model_validate(quantity)) == shown
