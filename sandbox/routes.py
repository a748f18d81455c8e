"""Routes of the sandbox EHR (namespace `sandbox`), included by sandbox/urls.py."""

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, re_path

from sandbox import views_bulk, views_ehr, views_fhir, views_oauth, views_testing

app_name = "sandbox"

_TYPE = r"(?P<rtype>[A-Za-z]+)"
_ID = r"(?P<rid>[A-Za-z0-9\-.]{1,64})"

# The sandbox's icon (an "E" on the EHR header's blue), so its tabs differ from the app's.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    'fill="#234e70"/><path d="M4 3h8v2H6.5v2H11v2H6.5v2H12v2H4z" fill="#fff"/></svg>'
)


def favicon(request):
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("", lambda request: HttpResponseRedirect("/ehr/"), name="root"),
    path("favicon.ico", favicon, name="favicon"),
    path("fhir/.well-known/smart-configuration", views_oauth.smart_configuration, name="smart_configuration"),
    path("fhir/metadata", views_fhir.metadata, name="metadata"),
    re_path(r"^fhir/Observation/\$lastn$", views_fhir.lastn, name="lastn"),
    re_path(r"^fhir/Patient/\$export$", views_bulk.kickoff, name="patient_export"),
    re_path(rf"^fhir/Group/{_ID}/\$export$", views_bulk.kickoff, name="group_export"),
    re_path(rf"^fhir/Group/{_ID}$", views_bulk.group_read, name="group_read"),
    path("fhir/_bulk/status/<str:job_id>", views_bulk.status, name="export_status"),
    path("fhir/_bulk/file/<str:job_id>/<str:rtype>/<int:part>", views_bulk.file, name="export_file"),
    path(
        "fhir/_bulk/deleted/<str:job_id>/<int:part>",
        views_bulk.extra_file,
        {"kind": "deleted"},
        name="export_deleted",
    ),
    path(
        "fhir/_bulk/error/<str:job_id>/<int:part>",
        views_bulk.extra_file,
        {"kind": "error"},
        name="export_error",
    ),
    re_path(rf"^fhir/{_TYPE}/_search$", views_fhir.search, name="search_post"),
    re_path(rf"^fhir/{_TYPE}/{_ID}$", views_fhir.read, name="read"),
    re_path(rf"^fhir/{_TYPE}$", views_fhir.search, name="search"),
    re_path(r"^fhir/(?P<rest>.*)$", views_fhir.not_found, name="fhir_not_found"),
    path(".well-known/jwks.json", views_oauth.jwks, name="jwks"),
    path("smart-style.json", views_oauth.smart_style, name="smart_style"),
    path("auth/authorize", views_oauth.authorize, name="authorize"),
    path("auth/authorize/<str:txn_id>", views_oauth.authorize_continue, name="authorize_continue"),
    path("auth/token", views_oauth.token, name="token"),
    path("auth/introspect", views_oauth.introspect, name="introspect"),
    path("auth/revoke", views_oauth.revoke, name="revoke"),
    path("auth/login", views_oauth.login, name="login"),
    path("auth/logout", views_oauth.logout, name="logout"),
    path("ehr/", views_ehr.home, name="ehr_home"),
    path("ehr/patients/<str:pid>/", views_ehr.chart, name="ehr_chart"),
    path("_sandbox/health", views_testing.health, name="health"),
    path("_sandbox/faults", views_testing.faults, name="faults"),
    path("_sandbox/stats", views_testing.stats_view, name="stats"),
    path("_sandbox/clients", views_testing.clients, name="clients"),
    path("_sandbox/launch", views_testing.launch, name="launch"),
    path("_sandbox/delete", views_testing.delete, name="delete"),
]
