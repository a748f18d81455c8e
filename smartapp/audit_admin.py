"""The audit trail in Django admin: searchable and filterable, and read-only for everyone.

An audit trail that staff could edit or prune from the UI would prove nothing, so add, change
and delete are refused even to superusers; retention is an operations task (SQL/cron), not a click.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from smartapp.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "interaction",
        "resource_type",
        "outcome",
        "count",
        "status_code",
        "ehr",
        "patient_id",
        "fhir_user",
        "user",
    )
    list_filter = ("outcome", "interaction", "resource_type", "ehr", "at")
    # Exact matches: a patient id or request id is looked up, not fuzzily searched.
    search_fields = ("=patient_id", "=request_id", "fhir_user")
    search_help_text = "Exact patient id or request id, or part of the fhirUser."
    date_hierarchy = "at"
    list_select_related = ("ehr", "user")
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over a large audit table on every page is slow
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
