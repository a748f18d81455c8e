"""The dashboard's default scopes ask for lab reports; older demo registrations get them too."""

from __future__ import annotations

from sandbox.management.commands.rundemo import _add_new_default_scopes
from smartapp.models import DEFAULT_STANDALONE_SCOPE, Ehr

OLD_EHR_LAUNCH = (
    "launch openid fhirUser online_access patient/Patient.rs patient/Encounter.rs "
    "patient/Observation.rs patient/Condition.rs"
)


def test_a_new_registration_asks_for_lab_reports_in_both_launches(ehr):
    assert "patient/DiagnosticReport.rs" in ehr.scope_list()
    assert "patient/DiagnosticReport.rs" in ehr.scope_list(standalone=True)


def test_the_demo_adds_the_report_scope_and_keeps_what_was_edited_by_hand(ehr):
    ehr.ehr_launch_scope = OLD_EHR_LAUNCH + " patient/Immunization.rs"
    narrowed = "launch/patient openid patient/Patient.read patient/Observation.read"  # v1, no Condition
    ehr.standalone_scope = narrowed
    ehr.save()
    _add_new_default_scopes(ehr)
    ehr = Ehr.objects.get(pk=ehr.pk)
    assert ehr.ehr_launch_scope == OLD_EHR_LAUNCH + " patient/Immunization.rs patient/DiagnosticReport.rs"
    assert ehr.standalone_scope == narrowed + " patient/DiagnosticReport.rs"
    _add_new_default_scopes(ehr)  # idempotent
    assert Ehr.objects.get(pk=ehr.pk).standalone_scope == narrowed + " patient/DiagnosticReport.rs"


def test_a_registration_that_mentions_reports_is_left_alone(ehr):
    ehr.ehr_launch_scope = OLD_EHR_LAUNCH + " patient/DiagnosticReport.read"
    ehr.save()
    _add_new_default_scopes(ehr)
    ehr.refresh_from_db()
    assert ehr.ehr_launch_scope == OLD_EHR_LAUNCH + " patient/DiagnosticReport.read"
    assert ehr.standalone_scope == DEFAULT_STANDALONE_SCOPE
