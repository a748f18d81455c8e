"""Read-only admin for the population sync history and summary rows."""

from __future__ import annotations

from django.contrib import admin

from population.models import PatientSummary, SyncRun


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(_ReadOnly):
    list_display = (
        "started_at",
        "ehr",
        "group_id",
        "status",
        "finished_at",
        "resources",
        "patients",
        "deleted",
        "complete",
        "errors",
    )
    list_filter = ("status", "ehr")
    list_select_related = ("ehr",)
    date_hierarchy = "started_at"

    @admin.display(boolean=True, description="complete")
    def complete(self, run: SyncRun) -> bool | None:
        """Unknown while running or after a failure; false when the EHR reported errors."""
        return None if run.status != SyncRun.Status.SUCCEEDED else not run.incomplete


@admin.register(PatientSummary)
class PatientSummaryAdmin(_ReadOnly):
    list_display = (
        "patient_id",
        "ehr",
        "group_id",
        "bp_controlled",
        "hba1c",
        "active_problems",
        "last_encounter_at",
    )
    list_filter = ("ehr", "group_id", "bp_controlled")
    list_select_related = ("ehr",)
    search_fields = ("patient_id",)
