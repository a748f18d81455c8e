"""Admin for backend-services registrations (one per EHR, optional).

A model admin of its own rather than an inline on the EHR page, so the EHR form (and every
script that posts it) is unchanged. Its token check also runs in the EHRs' *Check configuration*.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from smartapp import backend
from smartapp.models import BackendRegistration


class BackendRegistrationForm(forms.ModelForm):
    class Meta:
        model = BackendRegistration
        fields = ("ehr", "enabled", "client_id", "scope", "alg", "group_id")
        widgets = {"scope": forms.Textarea(attrs={"rows": 2, "cols": 80})}


@admin.register(BackendRegistration)
class BackendRegistrationAdmin(admin.ModelAdmin):
    form = BackendRegistrationForm
    list_display = ("ehr", "client_id", "alg", "group_id", "enabled", "since")
    list_filter = ("enabled", "alg")
    list_select_related = ("ehr",)
    search_fields = ("client_id", "ehr__name", "group_id")
    readonly_fields = ("since", "created_at", "updated_at")
    actions = ["check_token"]

    @admin.action(description="Check backend token (client_credentials now)")
    def check_token(self, request: HttpRequest, queryset) -> None:
        for registration in queryset.select_related("ehr"):
            report = backend.check(registration)
            level = messages.SUCCESS if report.ok else messages.ERROR
            self.message_user(request, f"{registration.ehr}: {report.message}", level)
