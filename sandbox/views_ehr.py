"""The simulated EHR: clinician login, patient list, chart, and the app tab (EHR launch in an iframe)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sandbox import oauth
from sandbox.store import Client, Resource, UserProfile


def _clinician(request: HttpRequest) -> UserProfile | None:
    if not request.user.is_authenticated:
        return None
    profile = UserProfile.objects.filter(user=request.user).first()
    return profile if profile and profile.fhir_user.startswith("Practitioner/") else None


def _login_redirect(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(f"{reverse('sandbox:login')}?{urlencode({'next': request.get_full_path()})}")


def _name(res: dict) -> str:
    names = res.get("name") or [{}]
    n = names[0]
    return " ".join([*n.get("given", []), n.get("family", "")]).strip() or "(no name)"


def _text(concept: object) -> str:
    """A CodeableConcept or Coding as a person reads it: its text, else a display, else a code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"]
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    if "display" in concept or "code" in concept:  # a bare Coding (Encounter.class)
        codings = [concept, *codings]
    for key in ("display", "code"):
        for coding in codings:
            if isinstance(coding.get(key), str) and coding[key].strip():
                return coding[key]
    return ""


def _condition_row(res: dict) -> dict:
    """What the chart lists of a Condition, whatever optional elements it lacks."""
    status = _text(res.get("clinicalStatus"))
    if _text(res.get("verificationStatus")).lower() in ("entered-in-error", "entered in error"):
        status = "entered in error"
    return {"name": _text(res.get("code")) or "(unnamed problem)", "status": status.lower()}


def _encounter_row(res: dict) -> dict:
    """What the chart shows of an Encounter, whatever optional elements it lacks."""
    period = res.get("period") if isinstance(res.get("period"), dict) else {}
    start = period.get("start") if isinstance(period.get("start"), str) else ""
    return {
        "id": res["id"],
        "start": start,
        "date": start[:10],
        "class": _text(res.get("class")),
        "status": res.get("status") if isinstance(res.get("status"), str) else "",
    }


def _patients() -> list[dict]:
    out = []
    for body in Resource.objects.filter(rtype="Patient").order_by("rid").values_list("body", flat=True):
        res = json.loads(body)
        out.append(
            {
                "id": res["id"],
                "name": _name(res),
                "gender": res.get("gender", ""),
                "birth": res.get("birthDate", ""),
            }
        )
    return out


@never_cache
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    profile = _clinician(request)
    if profile is None:
        return _login_redirect(request)
    clients = [c for c in Client.objects.all() if c.launch_url]
    return render(
        request, "sandbox/ehr_list.html", {"profile": profile, "patients": _patients(), "clients": clients}
    )


@never_cache
@require_GET
def chart(request: HttpRequest, pid: str) -> HttpResponse:
    profile = _clinician(request)
    if profile is None:
        return _login_redirect(request)
    row = Resource.objects.filter(rtype="Patient", rid=pid).first()
    if row is None:
        raise Http404("no such patient")
    patient = json.loads(row.body)
    encounters = [
        _encounter_row(json.loads(b))
        for b in Resource.objects.filter(rtype="Encounter", patient_id=pid)
        .order_by("-date")
        .values_list("body", flat=True)
    ]
    encounter_id = request.GET.get("encounter") or (encounters[0]["id"] if encounters else "")
    if encounter_id and encounter_id not in {e["id"] for e in encounters}:
        raise Http404("no such encounter for this patient")
    conditions = [
        _condition_row(json.loads(b))
        for b in Resource.objects.filter(rtype="Condition", patient_id=pid).values_list("body", flat=True)
    ]
    clients = [c for c in Client.objects.all() if c.launch_url]
    app = None
    iframe_src = ""
    app_id = request.GET.get("app", "")
    if app_id:
        app = next((c for c in clients if c.client_id == app_id), None)
        if app is None:
            raise Http404("no such app")
        launch = oauth.create_launch(app, pid, encounter_id, profile.fhir_user)
        sep = "&" if "?" in app.launch_url else "?"
        iframe_src = app.launch_url + sep + urlencode({"iss": oauth.fhir_base(request), "launch": launch})
    return render(
        request,
        "sandbox/ehr_chart.html",
        {
            "profile": profile,
            "patient": patient,
            "patient_name": _name(patient),
            "encounters": encounters,
            "encounter_id": encounter_id,
            "conditions": conditions,
            "clients": clients,
            "app": app,
            "iframe_src": iframe_src,
        },
    )
