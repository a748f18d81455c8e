"""The one SMART scope grammar (smartapp.scopes), as the launch and the dashboard use it."""

from __future__ import annotations

import pytest

from smartapp import scopes


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("patient/Condition.read", True),
        ("user/Condition.rs", True),
        ("patient/*.rs", True),
        ("patient/*.read", True),
        ("patient/Condition.r", False),  # read without search
        ("patient/Condition.c", False),
        ("system/Condition.rs", False),
        ("patient/Observation.rs", False),
    ],
)
def test_it_checks_scopes(scope, allowed):
    assert scopes.check({scope}, "Condition", "search").allowed is allowed


@pytest.mark.parametrize(
    ("scope", "v2"),
    [
        ("patient/Observation.read", "patient/Observation.rs"),
        ("user/*.write", "user/*.cud"),
        ("patient/Patient.*", "patient/Patient.cruds"),
        ("patient/Patient.rs", "patient/Patient.rs"),
        ("openid", "openid"),
    ],
)
def test_it_puts_v1_scopes_in_v2_form(scope, v2):
    assert scopes.v2_form(scope) == v2


@pytest.mark.parametrize(
    ("scope", "v1"),
    [
        ("patient/Observation.rs", "patient/Observation.read"),
        ("patient/Observation.rs?category=laboratory", "patient/Observation.read"),
        ("user/Patient.cud", "user/Patient.write"),
        ("patient/*.cruds", "patient/*.*"),
        ("launch/patient", "launch/patient"),
    ],
)
def test_it_puts_v2_scopes_in_v1_form(scope, v1):
    assert scopes.v1_form(scope) == v1


def test_both_forms_mean_the_same_permissions():
    for v1, letters in scopes.V1_PERMISSIONS.items():
        assert scopes.permissions(v1) == set(letters)
        assert scopes.v1_form(f"patient/X.{letters}") == f"patient/X.{v1}"


def test_it_knows_which_scopes_need_a_patient():
    assert scopes.needs_patient("launch/patient openid")
    assert scopes.needs_patient("patient/Observation.rs")
    assert not scopes.needs_patient("user/Patient.rs openid fhirUser")
