"""Test-only JSON endpoints (loopback clients only): faults, stats, clients, launches, health.

Shapes:
  GET    /_sandbox/faults[?client_id=ID] -> {"faults": {ID: {...}}, "available": {name: description}}
  POST   /_sandbox/faults {"client_id": ID, "faults": {...}, "merge": false}
                                         -> {"client_id": ID, "faults": {...}}
  DELETE /_sandbox/faults[?client_id=ID] -> {"reset": [ID, ...]}
  GET    /_sandbox/stats -> {"token": {"total": n, "<grant_type>": n}, "token_by_client": {...},
                             "fhir": {"total": n, "by_type": {...}}, "fhir_by_client": {...}, "other": {...},
                             "timeline": [{"kind": "fhir"|"token"|..., "type": rtype, "start": epoch s,
                                           "end": epoch s, "status": n}, ...]}
  DELETE /_sandbox/stats                  -> {"reset": true}
  POST   /_sandbox/clients {client fields}-> {"client_id": ID, "created": bool}
  POST   /_sandbox/launch {"client_id", "patient", "encounter"?, "user"?} -> {"launch", "iss", "launch_url"}
  POST   /_sandbox/delete {"resource": "Observation/ID"} -> {"deleted": ["Observation/ID"]}
                                          (a Patient takes its whole compartment with it; each deleted
                                          resource is listed in later `_since` exports' `deleted` files)
  GET    /_sandbox/health                 -> {"status": "ok"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from sandbox import bulk, oauth, registry
from sandbox import faults as fault_mod
from sandbox.faults import stats
from sandbox.store import Client, Resource

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def loopback_only(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.META.get("REMOTE_ADDR") not in LOOPBACK:
            return JsonResponse(
                {"error": "forbidden", "error_description": "loopback clients only"}, status=403
            )
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def _body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as e:
        raise ValueError("the body must be JSON") from e
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _bad(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": "invalid_request", "error_description": message}, status=status)


@loopback_only
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "patients": Resource.objects.filter(rtype="Patient").count()})


@loopback_only
@require_http_methods(["GET", "POST", "DELETE"])
def faults(request: HttpRequest) -> JsonResponse:
    client_id = request.GET.get("client_id", "")
    if request.method == "GET":
        qs = Client.objects.filter(client_id=client_id) if client_id else Client.objects.all()
        return JsonResponse(
            {
                "faults": {c.client_id: c.faults or {} for c in qs},
                "available": {k: v[1] for k, v in fault_mod.FAULTS.items()},
            }
        )
    if request.method == "DELETE":
        qs = Client.objects.filter(client_id=client_id) if client_id else Client.objects.all()
        ids = list(qs.values_list("client_id", flat=True))
        qs.update(faults={})
        return JsonResponse({"reset": ids})
    try:
        data = _body(request)
        new = fault_mod.validate(data.get("faults", {}))
    except (ValueError, fault_mod.FaultError) as e:
        return _bad(str(e))
    client = Client.objects.filter(client_id=data.get("client_id", "")).first()
    if client is None:
        return _bad("unknown client_id", 404)
    client.faults = {**(client.faults or {}), **new} if data.get("merge") else new
    client.save(update_fields=["faults"])
    return JsonResponse({"client_id": client.client_id, "faults": client.faults})


@loopback_only
@require_http_methods(["GET", "DELETE"])
def stats_view(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        stats.reset()
        return JsonResponse({"reset": True})
    return JsonResponse(stats.snapshot())


@loopback_only
@require_http_methods(["POST"])
def clients(request: HttpRequest) -> JsonResponse:
    try:
        client, created = registry.from_dict(_body(request))
    except (ValueError, registry.RegistrationError) as e:
        return _bad(str(e))
    return JsonResponse({"client_id": client.client_id, "created": created})


@loopback_only
@require_http_methods(["POST"])
def launch(request: HttpRequest) -> JsonResponse:
    """An EHR launch without the UI: what the chart's app tab does."""
    try:
        data = _body(request)
    except ValueError as e:
        return _bad(str(e))
    client = Client.objects.filter(client_id=data.get("client_id", "")).first()
    if client is None:
        return _bad("unknown client_id", 404)
    patient = data.get("patient", "")
    if not Resource.objects.filter(rtype="Patient", rid=patient).exists():
        return _bad("unknown patient", 404)
    encounter = data.get("encounter", "")
    if (
        encounter
        and not Resource.objects.filter(rtype="Encounter", rid=encounter, patient_id=patient).exists()
    ):
        return _bad("unknown encounter for this patient", 404)
    user = data.get("user", "Practitioner/prac-smith")
    token = oauth.create_launch(client, patient, encounter, user)
    iss = oauth.fhir_base(request)
    sep = "&" if "?" in client.launch_url else "?"
    url = client.launch_url + sep + urlencode({"iss": iss, "launch": token}) if client.launch_url else ""
    return JsonResponse({"launch": token, "iss": iss, "launch_url": url})


@loopback_only
@require_http_methods(["POST"])
def delete(request: HttpRequest) -> JsonResponse:
    """Delete a resource as the EHR's users would, so `_since` exports list it as deleted."""
    try:
        data = _body(request)
    except ValueError as e:
        return _bad(str(e))
    reference = data.get("resource")
    if not isinstance(reference, str) or reference.count("/") != 1:
        return _bad("resource must be a reference: Type/id")
    deleted = bulk.delete_resource(*reference.split("/"))
    if not deleted:
        return _bad("unknown resource", 404)
    return JsonResponse({"deleted": deleted})
