"""Shared fixtures. Area-specific fixtures live in the conftest of each tests/ sub-package."""

from __future__ import annotations

import pytest

from clinical import capabilities, reading_cache
from clinical.fhir import memo
from smartapp.models import Ehr


@pytest.fixture(autouse=True)
def _fresh_capabilities():
    """Each test asks the FHIR server's CapabilityStatement anew (the answer is kept per process)."""
    capabilities.forget()
    yield
    capabilities.forget()


@pytest.fixture(autouse=True)
def _fresh_parse_caches():
    """Parsed resources and their readings are kept per process: a test that patches how they
    are built must not be handed what an earlier test built."""
    memo.clear()
    reading_cache.clear()
    yield
    memo.clear()
    reading_cache.clear()


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
