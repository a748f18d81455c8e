"""Sandbox admin (the sandbox process only; under the main settings this registers nothing)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin

if getattr(settings, "SANDBOX_SERVER", False):
    from sandbox.store import Client, Resource, Token, UserProfile

    @admin.register(Client)
    class ClientAdmin(admin.ModelAdmin):
        list_display = ["client_id", "name", "launch_url", "rotate_refresh_tokens", "faults"]
        search_fields = ["client_id", "name"]
        fields = [
            "client_id",
            "name",
            "redirect_uris",
            "launch_url",
            "jwks_url",
            "jwks",
            "scope",
            "rotate_refresh_tokens",
            "consent_on_ehr_launch",
            "faults",
        ]

    @admin.register(Resource)
    class ResourceAdmin(admin.ModelAdmin):
        list_display = ["rtype", "rid", "patient_id", "date", "status"]
        list_filter = ["rtype"]
        search_fields = ["rid", "patient_id"]

    @admin.register(Token)
    class TokenAdmin(admin.ModelAdmin):
        list_display = ["kind", "client", "patient_id", "fhir_user", "expires_at", "revoked"]
        list_filter = ["kind", "revoked"]
        exclude = ["token_hash"]

    admin.site.register(UserProfile)
