"""Bulk Data export endpoints of the sandbox: kick-off, status, files, cancel; Group read.

Reference: https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox import bulk, fhirsearch, oauth
from sandbox import faults as fault_mod
from sandbox.faults import stats
from sandbox.scopes import Access
from sandbox.store import Token
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


@csrf_exempt
@require_http_methods(["GET"])
def kickoff(request: HttpRequest, rid: str | None = None) -> HttpResponse:
    """`Group/[id]/$export` or `Patient/$export`: 202 with the status URL in Content-Location."""
    stats.fhir("$export")
    token = _bearer(request)
    if isinstance(token, HttpResponse):
        return token
    if "respond-async" not in request.META.get("HTTP_PREFER", ""):
        return outcome(400, "invalid", "$export needs the header Prefer: respond-async")
    injected = _counted(token, "bulk_kickoff_status", "bulk_kickoff_times")
    if injected:
        return _fault_response(token, injected)
    output_format = request.GET.get("_outputFormat", "")
    if output_format and output_format not in bulk.NDJSON_FORMATS:
        return outcome(400, "not-supported", f"_outputFormat not supported: {output_format}")
    if "_typeFilter" in request.GET or "_elements" in request.GET:
        return outcome(400, "not-supported", "_typeFilter and _elements are not supported")
    wanted = [t for t in request.GET.get("_type", "").split(",") if t] or list(bulk.EXPORT_TYPES)
    unknown = [t for t in wanted if t not in bulk.EXPORT_TYPES]
    if unknown:
        return outcome(400, "not-supported", f"_type not supported: {', '.join(unknown)}")
    access = Access.from_scope_string(token.scope)
    allowed = tuple(t for t in wanted if any(s.context == "system" for s in access.grants(t, "r")))
    if not allowed:
        return _forbidden("no granted system/ scope allows reading the requested types")
    since = ""
    if request.GET.get("_since"):
        try:
            start, _end = fhirsearch.parse_fhir_date(request.GET["_since"])
        except fhirsearch.SearchError as e:
            return outcome(400, "invalid", f"_since: {e}")
        since = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    members = None
    if rid is not None:
        members = bulk.group_members(rid)
        if members is None:
            return outcome(404, "not-found", f"Group/{rid} not found")
    if bulk.active_count(token.client.pk) >= MAX_ACTIVE_JOBS:
        return outcome(429, "throttled", "too many exports in progress", {"Retry-After": "5"})
    job = bulk.start(token.client.pk, request.build_absolute_uri(), allowed, since, members)
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
    body = json.dumps(job.manifest(oauth.fhir_base(request)), separators=(",", ":"))
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
