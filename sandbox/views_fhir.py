"""FHIR R4 REST API of the sandbox: metadata, read, search (Bearer token, SMART scopes)."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox import faults as fault_mod
from sandbox import fhirsearch, oauth
from sandbox.codes import FHIR_BASE_TOKEN
from sandbox.faults import stats
from sandbox.scopes import Access
from sandbox.store import Resource, Token

FHIR_JSON = "application/fhir+json; charset=utf-8"
OPERATIONS = {
    "Observation": [
        {"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}
    ]
}
NOT_IN_COMPARTMENT = {"Practitioner"}


def _json(body: dict | str, status: int = 200, headers: dict | None = None) -> HttpResponse:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    resp = HttpResponse(text, status=status, content_type=FHIR_JSON)
    resp["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def outcome(status: int, code: str, diagnostics: str, headers: dict | None = None) -> HttpResponse:
    """An OperationOutcome error. Reference: https://hl7.org/fhir/R4/operationoutcome.html"""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
    return _json(body, status, headers)


def _unauthorized(description: str, error: str | None = "invalid_token") -> HttpResponse:
    # Reference: https://www.rfc-editor.org/rfc/rfc6750#section-3
    challenge = 'Bearer realm="sandbox"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    return outcome(401, "login", description, {"WWW-Authenticate": challenge})


def _forbidden(description: str) -> HttpResponse:
    challenge = f'Bearer realm="sandbox", error="insufficient_scope", error_description="{description}"'
    return outcome(403, "forbidden", description, {"WWW-Authenticate": challenge})


def _bearer(request: HttpRequest) -> Token | HttpResponse:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return _unauthorized("Bearer token required", error=None)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return _unauthorized("Authorization must be a Bearer token", error="invalid_request")
    token = oauth.access_token(value.strip())
    if token is None:
        return _unauthorized("access token invalid, expired or revoked")
    return token


def _inject(token: Token, rtype: str) -> HttpResponse | None:
    """Latency and failure faults that apply before the request is served."""
    faults = token.client.faults or {}
    if not faults or not fault_mod.applies_to(faults, rtype):
        return None
    if faults.get("latency_ms"):
        time.sleep(faults["latency_ms"] / 1000)
    if faults.get("slow_ms") and fault_mod.consume(token.client.pk, "slow_ms", "slow_times"):
        time.sleep(faults["slow_ms"] / 1000)
    status = faults.get("fhir_status")
    if status and fault_mod.consume(token.client.pk, "fhir_status", "fhir_status_times"):
        headers = {}
        if status in (429, 503):
            headers["Retry-After"] = str(faults.get("retry_after", 1))
        return outcome(
            int(status),
            "transient" if status >= 500 or status == 429 else "processing",
            f"injected fault: HTTP {status}",
            headers,
        )
    return None


def _corrupt(body: str, rtype: str) -> str:
    data = json.loads(body)
    data.update(
        {"status": "not-a-valid-status", "code": "not a CodeableConcept", "unexpectedElement": {"x": 1}}
    )
    if rtype == "Patient":
        data.update({"gender": "robot", "birthDate": "31/02/1999", "name": "Not A HumanName"})
    else:
        data["subject"] = "Patient/not-a-reference-object"
        data["effectiveDateTime"] = "yesterday"
    return json.dumps(data, separators=(",", ":"))


def _scope_filter(token: Token, rtype: str, perm: str) -> Q | HttpResponse:
    """The rows this token may see for `perm` on `rtype`, as a Q (403 when none)."""
    granting = Access.from_scope_string(token.scope).grants(rtype, perm)
    if not granting:
        verb = "read" if perm == "r" else "search"
        return _forbidden(f"no granted scope allows {verb} on {rtype}")
    q = Q(pk__in=[])
    for scope in granting:
        part = Q()
        if scope.context == "patient" and rtype not in NOT_IN_COMPARTMENT:
            if not token.patient_id:
                continue
            part &= Q(patient_id=token.patient_id)
        if scope.query:
            try:
                sub, _ = fhirsearch.apply_params(
                    Resource.objects.filter(rtype=rtype), rtype, list(scope.query), False
                )
            except fhirsearch.SearchError:
                continue
            part &= Q(pk__in=sub.values("pk"))
        if not part:
            return Q()  # an unrestricted scope (an empty Q would vanish in an OR)
        q |= part
    return q


def _common(request: HttpRequest, rtype: str) -> Token | HttpResponse:
    stats.fhir(rtype)
    if rtype not in fhirsearch.SUPPORTED_TYPES:
        return outcome(404, "not-supported", f"resource type not supported: {rtype}")
    token = _bearer(request)
    if isinstance(token, HttpResponse):
        return token
    stats.fhir_client(token.client.client_id)
    return token


def _finish(token: Token, rtype: str, body: str) -> HttpResponse:
    faults = token.client.faults or {}
    if faults.get("malformed_json") and fault_mod.applies_to(faults, rtype):
        return _json(body[: max(len(body) // 2, 1)])
    return _json(body)


def _admit(request: HttpRequest, rtype: str, interaction: str):
    """Token check, injected faults and scope filter shared by read and search: either a response
    to send as it is, or (token, the Q filter of what the scopes allow)."""
    token = _common(request, rtype)
    if isinstance(token, HttpResponse):
        return token
    injected = _inject(token, rtype)
    if injected:
        return injected
    allowed = _scope_filter(token, rtype, interaction)
    if isinstance(allowed, HttpResponse):
        return allowed
    return token, allowed


@require_http_methods(["GET"])
def read(request: HttpRequest, rtype: str, rid: str) -> HttpResponse:
    admitted = _admit(request, rtype, "r")
    if isinstance(admitted, HttpResponse):
        return admitted
    token, allowed = admitted
    row = Resource.objects.filter(rtype=rtype, rid=rid).only("pk", "body").first()
    if row is None:
        return outcome(404, "not-found", f"{rtype}/{rid} not found")
    if not Resource.objects.filter(allowed, pk=row.pk).exists():
        return _forbidden(f"the granted scopes do not cover {rtype}/{rid}")
    body = with_base(row.body, oauth.fhir_base(request))
    faults = token.client.faults or {}
    if faults.get("invalid_resources") and fault_mod.applies_to(faults, rtype):
        body = _corrupt(body, rtype)
    return _finish(token, rtype, body)


def with_base(body: str, base: str) -> str:
    """A stored body with its absolute references made absolute (codes.FHIR_BASE_TOKEN)."""
    return body.replace(FHIR_BASE_TOKEN, base) if FHIR_BASE_TOKEN in body else body


@csrf_exempt
@require_http_methods(["GET", "POST"])
def search(request: HttpRequest, rtype: str) -> HttpResponse:
    admitted = _admit(request, rtype, "s")
    if isinstance(admitted, HttpResponse):
        return admitted
    token, allowed = admitted
    source = request.POST if request.method == "POST" else request.GET
    params = [(k, v) for k in source for v in source.getlist(k)]
    strict = "handling=strict" in request.META.get("HTTP_PREFER", "")
    try:
        qs, used = fhirsearch.apply_params(Resource.objects.filter(rtype=rtype), rtype, params, strict)
        sort = source.get("_sort")
        qs = fhirsearch.apply_sort(qs.filter(allowed), sort)
        count = fhirsearch.parse_int(
            source.get("_count"), "_count", fhirsearch.DEFAULT_COUNT, 0, fhirsearch.MAX_COUNT
        )
        offset = fhirsearch.parse_int(source.get("_offset"), "_offset", 0, 0)
    except fhirsearch.SearchError as e:
        return outcome(400, "invalid", str(e))
    total = qs.count()
    # Deferred join: page through the index for ids only, then fetch just this page's bodies.
    ids = list(qs.values_list("pk", flat=True)[offset : offset + count]) if count else []
    bodies = dict(Resource.objects.filter(pk__in=ids).values_list("pk", "body"))
    rows = [bodies[pk] for pk in ids]
    base = oauth.fhir_base(request)
    faults = token.client.faults or {}
    corrupt = faults.get("invalid_resources") and fault_mod.applies_to(faults, rtype)

    def link(off: int) -> str:
        extra = (
            [("_count", str(count))]
            + ([("_sort", sort)] if sort else [])
            + ([("_offset", str(off))] if off else [])
        )
        return f"{base}/{rtype}?{urlencode(used + extra)}"

    links = [{"relation": "self", "url": link(offset)}]
    if count and offset + count < total:
        links.append(
            {"relation": "next", "url": link(offset) if faults.get("looping_next") else link(offset + count)}
        )
    if offset:
        links.append({"relation": "previous", "url": link(max(offset - count, 0))})
    return _finish(token, rtype, _bundle(base, rtype, rows, total, links, bool(corrupt)))


def _bundle(base: str, rtype: str, rows: list[str], total: int, links: list[dict], corrupt: bool) -> str:
    """A searchset Bundle around stored bodies, spliced in as text (no decode/encode per entry)."""
    head = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "type": "searchset",
        "total": total,
        "link": links,
    }
    entries = []
    for body in rows:
        body = with_base(body, base)
        if corrupt:
            body = _corrupt(body, rtype)
        rid = json.loads(body)["id"] if corrupt else _extract_id(body)
        entries.append(
            '{"fullUrl":'
            + json.dumps(f"{base}/{rtype}/{rid}")
            + ',"resource":'
            + body
            + ',"search":{"mode":"match"}}'
        )
    text = json.dumps(head, separators=(",", ":"))
    if entries:
        text = text[:-1] + ',"entry":[' + ",".join(entries) + "]}"
    return text


@require_http_methods(["GET"])
def lastn(request: HttpRequest) -> HttpResponse:
    """Observation/$lastn: the `max` (default 1) most recent observations of each code, by
    effective date, among those the other parameters (any Observation search parameter) select.

    A "code" is the whole Observation.code (all its codings), so one reading coded both
    2708-6 and 59408-5 is one group. Status is not filtered unless `status` is given, as in
    the specification. Reference: https://hl7.org/fhir/R4/observation-operation-lastn.html
    """
    rtype = "Observation"
    admitted = _admit(request, rtype, "s")
    if isinstance(admitted, HttpResponse):
        return admitted
    token, allowed = admitted
    params = [(k, v) for k in request.GET for v in request.GET.getlist(k) if k != "max"]
    if not any(k.partition(":")[0] in ("patient", "subject") for k, _ in params):
        return outcome(400, "required", "$lastn needs a patient or subject parameter")
    strict = "handling=strict" in request.META.get("HTTP_PREFER", "")
    try:
        qs, _used = fhirsearch.apply_params(Resource.objects.filter(rtype=rtype), rtype, params, strict)
        per_code = fhirsearch.parse_int(request.GET.get("max"), "max", 1, 1, fhirsearch.MAX_COUNT)
    except fhirsearch.SearchError as e:
        return outcome(400, "invalid", str(e))
    newest_first = [F("date").desc(nulls_last=True), F("id").desc()]
    ranked = (
        qs.filter(allowed)
        .annotate(rank=Window(RowNumber(), partition_by=[F("codes")], order_by=newest_first))
        .filter(rank__lte=per_code)
    )
    ids = list(ranked.order_by("codes", "rank").values_list("pk", flat=True))
    bodies = dict(Resource.objects.filter(pk__in=ids).values_list("pk", "body"))
    faults = token.client.faults or {}
    corrupt = bool(faults.get("invalid_resources") and fault_mod.applies_to(faults, rtype))
    base = oauth.fhir_base(request)
    links = [{"relation": "self", "url": f"{base}/{rtype}/$lastn?{request.GET.urlencode()}"}]
    return _finish(token, rtype, _bundle(base, rtype, [bodies[pk] for pk in ids], len(ids), links, corrupt))


def _extract_id(body: str) -> str:
    # Stored bodies are compact JSON with "id" right after "resourceType".
    start = body.find('"id":"')
    if start < 0:
        return json.loads(body)["id"]
    start += 6
    return body[start : body.index('"', start)]


@require_http_methods(["GET"])
def metadata(request: HttpRequest) -> HttpResponse:
    """CapabilityStatement with the SMART oauth-uris extension (deprecated discovery, still met)."""
    stats.fhir("metadata")
    base = oauth.base_url(request)
    fhir = oauth.fhir_base(request)
    search_params = {
        rtype: [{"name": name, "type": _param_type(kind)} for name, kind in params.items()]
        for rtype, params in fhirsearch.PARAMS.items()
    }
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-15",
        "kind": "instance",
        "software": {"name": "SMART Sandbox EHR", "version": "1.0"},
        "implementation": {"description": "Sandbox EHR (dev/test only)", "url": fhir},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "authorize", "valueUri": f"{base}/auth/authorize"},
                                {"url": "token", "valueUri": f"{base}/auth/token"},
                                {"url": "introspect", "valueUri": f"{base}/auth/introspect"},
                                {"url": "revoke", "valueUri": f"{base}/auth/revoke"},
                            ],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "resource": [
                    {
                        "type": rtype,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": search_params[rtype],
                    }
                    | ({"operation": OPERATIONS[rtype]} if rtype in OPERATIONS else {})
                    for rtype in fhirsearch.SUPPORTED_TYPES
                ],
            }
        ],
    }
    return _json(body)


def _param_type(kind: str) -> str:
    return {
        "id": "token",
        "patient": "reference",
        "encounter": "reference",
        "date": "date",
        "text": "string",
    }.get(kind, "token")


def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    return outcome(404, "not-found", "unknown FHIR endpoint")
