"""The audit trail of FHIR accesses (who read what kind of data for which patient, and how it went)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from smartapp.models import AuditEvent, Launch


class FhirAccess(Protocol):
    """What the FHIR client reports about one query (`clinical.fhir.Access`); no clinical values."""

    resource_type: str
    interaction: str  # "read" or "search"
    outcome: str  # an AuditEvent.Outcome value
    count: int | None
    status_code: int | None


def record_fhir_accesses(
    launch: Launch, accesses: Iterable[FhirAccess], request_id: str = "", patient_id: str | None = None
) -> None:
    """Write one audit row per access, in a single insert.

    `patient_id` names the patient actually queried when it is not the launch's own (a patient
    found by search in a user-level launch).
    """
    AuditEvent.objects.bulk_create(
        AuditEvent(
            user_id=launch.user_id,
            fhir_user=launch.fhir_user,
            ehr_id=launch.ehr_id,
            patient_id=launch.patient_id if patient_id is None else patient_id,
            resource_type=access.resource_type,
            interaction=access.interaction,
            count=access.count,
            outcome=access.outcome,
            status_code=access.status_code,
            request_id=request_id,
        )
        for access in accesses
    )
