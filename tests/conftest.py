"""Shared fixtures. Area-specific fixtures live in the conftest of each tests/ sub-package."""

from __future__ import annotations

import pytest

from smartapp.models import Ehr


@pytest.fixture
def ehr(db) -> Ehr:
    """A registered, enabled EHR using client_secret_basic."""
    return Ehr.objects.create(
        name="Test EHR",
        slug="test-ehr",
        iss="https://ehr.example.org/fhir",
        client_id="test-client",
        client_secret="test-secret",
        frame_ancestors="https://ehr.example.org",
    )
