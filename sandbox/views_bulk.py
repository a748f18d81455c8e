"""Bulk Data export endpoints of the sandbox: kick-off, status, files (data, deleted, error),
cancel; Group read.

Reference: https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox import bulk, fhirsearch, oauth
from sandbox import faults as fault_mod
from sandbox.faults import stats
from sandbox.scopes import Access
from sandbox.store import Resource, Token
from sandbox.views_fhir import _bearer, _forbidden, _json, outcome, with_base

MAX_ACTIVE_JOBS = 5


def _counted(token: Token, key: str, times_key: str) -> int | None:
    faults = token.client.faults or {}
    status = faults.get(key)
    if status and fault_mod.consume(token.client.pk, key, times_key):
        return int(status)
    return None


def _fault_response(token: Token, status: int) -> HttpResponse:
    headers = {"Retry-After": str((token.client.faults or {}).get("bulk_retry_after", 1))}
    code = "throttled" if status == 429 else "transient"
    return outcome(status, code, f"injected fault: HTTP {status}", headers if status in (429, 503) else None)


@require_http_methods(["GET"])
def group_read(request: HttpRequest, rid: str) -> HttpResponse:
    stats.fhir("Group")
    token = _bearer(request)
    if isinstance(token, HttpResponse):
        return token
    body = bulk.group_resource(rid, oauth.fhir_base(request))
    if body is None:
        return outcome(404, "not-found", f"Group/{rid} not found")
    return _json(body)


def _parameters(request: HttpRequest) -> dict[str, list[str]] | HttpResponse:
    """The kick-off's parameters: the query of a GET, or the Parameters resource of a POST."""
    if request.method == "GET":
        if "patient" in request.GET:
            return outcome(400, "invalid", "patient is a POST parameter only")
        return {name: request.GET.getlist(name) for name in request.GET}
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return outcome(400, "invalid", "a POST kick-off takes a Parameters resource")
    found: dict[str, list[str]] = {}
    for parameter in body.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name == "patient":
            value = (parameter.get("valueReference") or {}).get("reference", "")
            if not isinstance(value, str) or not value.startswith("Patient/"):
                return outcome(400, "invalid", "patient must be a reference to a Patient")
            value = value.removeprefix("Patient/")
        else:
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
        if not isinstance(name, str) or not isinstance(value, str):
            return outcome(400, "invalid", "each parameter needs a name and a string value")
        found.setdefault(name, []).append(value)
    return found


def _exact(since: str, start: datetime) -> str:
    """`_since` to the microsecond (the search parser keeps whole seconds), as tombstones are stamped."""
    fraction = re.search(r"T\d\d:\d\d:\d\d\.(\d{1,6})", since)
    if fraction:
        start = start.replace(microsecond=int(fraction.group(1).ljust(6, "0")))
    return start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def kickoff(request: HttpRequest, rid: str | None = None) -> HttpResponse:
    """`Group/[id]/$export` or `Patient/$export` (GET, or POST with `patient` parameters): 202
    with the status URL in Content-Location."""
    stats.fhir("$export")
    token = _bearer(request)
    if isinstance(token, HttpResponse):
        return token
    if "respond-async" not in request.META.get("HTTP_PREFER", ""):
        return outcome(400, "invalid", "$export needs the header Prefer: respond-async")
    injected = _counted(token, "bulk_kickoff_status", "bulk_kickoff_times")
    if injected:
        return _fault_response(token, injected)
    params = _parameters(request)
    if isinstance(params, HttpResponse):
        return params

    def one(name: str) -> str:
        return (params.get(name) or [""])[0]

    output_format = one("_outputFormat")
    if output_format and output_format not in bulk.NDJSON_FORMATS:
        return outcome(400, "not-supported", f"_outputFormat not supported: {output_format}")
    unsupported = sorted(set(params) & {"_typeFilter", "_elements", "includeAssociatedData"})
    if unsupported:
        return outcome(400, "not-supported", f"not supported: {', '.join(unsupported)}")
    wanted = [t for t in ",".join(params.get("_type", [])).split(",") if t] or list(bulk.EXPORT_TYPES)
    unknown = [t for t in wanted if t not in bulk.EXPORT_TYPES]
    if unknown:
        return outcome(400, "not-supported", f"_type not supported: {', '.join(unknown)}")
    access = Access.from_scope_string(token.scope)
    allowed = tuple(t for t in wanted if any(s.context == "system" for s in access.grants(t, "r")))
    if not allowed:
        return _forbidden("no granted system/ scope allows reading the requested types")
    since = deleted_since = ""
    if one("_since"):
        try:
            start, _end = fhirsearch.parse_fhir_date(one("_since"))
        except fhirsearch.SearchError as e:
            return outcome(400, "invalid", f"_since: {e}")
        since = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        deleted_since = _exact(one("_since"), start)
    members = None
    if rid is not None:
        members = bulk.group_members(rid)
        if members is None:
            return outcome(404, "not-found", f"Group/{rid} not found")
    patients = tuple(dict.fromkeys(params.get("patient", [])))
    if patients:
        if (token.client.faults or {}).get("bulk_no_patient_param"):
            return outcome(400, "not-supported", "the patient parameter is not supported (injected fault)")
        known = Resource.objects.filter(rtype="Patient", rid__in=patients)
        if members is not None:
            known = known.filter(members)
        missing = set(patients) - set(known.values_list("rid", flat=True))
        if missing:
            return outcome(400, "invalid", f"{len(missing)} patient(s) unknown or not in the group")
    if bulk.active_count(token.client.pk) >= MAX_ACTIVE_JOBS:
        return outcome(429, "throttled", "too many exports in progress", {"Retry-After": "5"})
    job = bulk.start(
        token.client.pk,
        request.build_absolute_uri(),
        allowed,
        since,
        members,
        group_id=rid or "",
        patients=patients,
        deleted_since=deleted_since,
    )
    response = HttpResponse(status=202)
    response["Content-Location"] = f"{oauth.fhir_base(request)}/_bulk/status/{job.id}"
    return response


def _job_for(request: HttpRequest, job_id: str) -> tuple[Token, bulk.Job] | HttpResponse:
    token = _bearer(request)
    if isinstance(token, HttpResponse):
        return token
    job = bulk.get(job_id)
    if job is None or job.client_pk != token.client.pk:
        return outcome(404, "not-found", "no such export (finished, cancelled or never started)")
    return token, job


@csrf_exempt
@require_http_methods(["GET", "DELETE"])
def status(request: HttpRequest, job_id: str) -> HttpResponse:
    """202 + X-Progress while running, 200 + manifest when complete, DELETE cancels."""
    stats.fhir("$export-status")
    found = _job_for(request, job_id)
    if isinstance(found, HttpResponse):
        return found
    token, job = found
    if request.method == "DELETE":
        bulk.delete(job.id)
        return HttpResponse(status=202)
    injected = _counted(token, "bulk_status", "bulk_status_times")
    if injected:
        return _fault_response(token, injected)
    faults = token.client.faults or {}
    if faults.get("bulk_export_error"):
        return outcome(500, "exception", "the export failed (injected export error)")
    job.polls += 1
    needed = int(faults.get("bulk_polls", 1))
    if job.polls <= needed:
        response = HttpResponse(status=202)
        response["X-Progress"] = f"{int(100 * (job.polls - 1) / max(needed, 1))}% complete"
        response["Retry-After"] = str(faults.get("bulk_retry_after", 1))
        return response
    job.completed = True
    error_codes = tuple(faults.get("bulk_error_codes") or ())
    body = json.dumps(job.manifest(oauth.fhir_base(request), error_codes), separators=(",", ":"))
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET"])
def file(request: HttpRequest, job_id: str, rtype: str, part: int) -> HttpResponse:
    """One NDJSON file, streamed; the bearer token is required (requiresAccessToken)."""
    stats.fhir("$export-file")
    found = _job_for(request, job_id)
    if isinstance(found, HttpResponse):
        return found
    token, job = found
    if (token.client.faults or {}).get("bulk_file_expired"):
        return outcome(410, "expired", "this export file has expired")
    if rtype not in job.types:
        return outcome(404, "not-found", "no such file")

    base = oauth.fhir_base(request)

    def lines():
        for body in job.part(rtype, part):
            yield with_base(body, base).encode() + b"\n"

    response = StreamingHttpResponse(lines(), content_type="application/fhir+ndjson")
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET"])
def extra_file(request: HttpRequest, job_id: str, kind: str, part: int) -> HttpResponse:
    """A `deleted` file (transaction Bundles of DELETE entries) or the `error` file
    (OperationOutcomes); the bearer token is required, as for the data."""
    stats.fhir(f"$export-{kind}")
    found = _job_for(request, job_id)
    if isinstance(found, HttpResponse):
        return found
    token, job = found
    if (token.client.faults or {}).get("bulk_file_expired"):
        return outcome(410, "expired", "this export file has expired")
    if kind == "error" and part == 0 and job.error_codes:
        resources = job.error_outcomes()
    elif kind == "deleted" and part * bulk.PART_SIZE < job.deletions().count():
        resources = job.deleted_part(part)
    else:
        return outcome(404, "not-found", "no such file")

    def lines():
        for resource in resources:
            yield json.dumps(resource, separators=(",", ":")).encode() + b"\n"

    response = StreamingHttpResponse(lines(), content_type="application/fhir+ndjson")
    response["Cache-Control"] = "no-store"
    return response
