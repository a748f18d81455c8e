"""Admin for the EHR registry: write-only client secret, read-only discovery, a configuration check."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse

from smartapp import oauth
from smartapp.models import Ehr


def _formfield(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # EHR endpoints are TLS; also Django 6's default
    return field.formfield(**kwargs)


class EhrForm(forms.ModelForm):
    """The client secret is write-only: never rendered back; blank keeps the stored one."""

    client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Encrypted at rest and never shown. Leave blank to keep the current secret.",
    )
    clear_client_secret = forms.BooleanField(
        required=False, help_text="Remove the stored secret (e.g. after switching to private_key_jwt)."
    )

    class Meta:
        model = Ehr
        formfield_callback = _formfield
        fields = (
            "name",
            "slug",
            "iss",
            "enabled",
            "client_id",
            "auth_method",
            "client_secret",
            "ehr_launch_scope",
            "standalone_scope",
            "frame_ancestors",
            "authorize_url_override",
            "token_url_override",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["client_secret"] = ""

    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("client_secret") or ""
        if cleaned.get("clear_client_secret"):
            cleaned["client_secret"] = ""
        elif not secret:
            cleaned["client_secret"] = self.instance.client_secret if self.instance.pk else ""
        method = cleaned.get("auth_method")
        if method and method != Ehr.AuthMethod.PRIVATE_KEY_JWT and not cleaned["client_secret"]:
            self.add_error("client_secret", f"{method} needs a client secret.")
        return cleaned


@admin.register(Ehr)
class EhrAdmin(admin.ModelAdmin):
    form = EhrForm
    list_display = (
        "name",
        "slug",
        "iss",
        "client_id",
        "auth_method",
        "enabled",
        "discovered_at",
        "discovery_status",
    )
    list_filter = ("enabled", "auth_method")
    search_fields = ("name", "slug", "iss", "client_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("discovery_problems", "discovery", "discovered_at", "created_at", "updated_at")
    actions = ["check_configuration"]
    fieldsets = (
        (None, {"fields": ("name", "slug", "iss", "enabled")}),
        ("Client", {"fields": ("client_id", "auth_method", "client_secret", "clear_client_secret")}),
        ("Scopes", {"fields": ("ehr_launch_scope", "standalone_scope")}),
        ("Embedding", {"fields": ("frame_ancestors",)}),
        ("Endpoint overrides", {"fields": ("authorize_url_override", "token_url_override")}),
        (
            "Discovery",
            {"fields": ("discovery_problems", "discovery", "discovered_at", "created_at", "updated_at")},
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj=None):
        """View-only staff get read-only fields, which would render the decrypted secret: show
        only whether one is stored."""
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        hidden = {"client_secret", "clear_client_secret"}
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in hidden)
                    + (("client_secret_status",) if "client_secret" in opts["fields"] else ())})
            for name, opts in fieldsets
        ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if self.has_change_permission(request, obj) else (*fields, "client_secret_status")

    @admin.display(description="discovery")
    def discovery_status(self, obj: Ehr) -> str:
        if obj.discovered_at is None:
            return "not fetched yet"
        errors = sum(1 for p in obj.discovery_problems if p.startswith("Error"))
        warnings = len(obj.discovery_problems) - errors
        if not obj.discovery_problems:
            return "OK"
        return ", ".join(
            part
            for part in (f"{errors} error(s)" if errors else "", f"{warnings} warning(s)" if warnings else "")
            if part
        )

    @admin.display(description="client secret")
    def client_secret_status(self, obj: Ehr) -> str:
        return "stored (encrypted, never shown)" if obj and obj.client_secret else "none"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.action(description="Check configuration (fetch SMART discovery)")
    def check_configuration(self, request: HttpRequest, queryset):
        reports = [oauth.check_configuration(ehr) for ehr in queryset]
        return TemplateResponse(
            request,
            "smartapp/admin_check_configuration.html",
            {
                **self.admin_site.each_context(request),
                "title": "EHR configuration check",
                "reports": reports,
                "opts": self.model._meta,
            },
        )


from smartapp import audit_admin  # noqa: E402, F401  (read-only audit trail admin)
