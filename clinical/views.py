"""Dashboard views: resolve the launch (middleware), query through the one FHIR client, render.

Every view takes `handle`, so LaunchContextMiddleware has already checked that this session
owns the launch and put it in `request.smart`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from clinical import fhir, parallel, style, timing
from clinical.dashboard import PANELS, Dashboard, build_dashboard, search_patients
from clinical.fhir import ID_PATTERN, FhirClient
from smartapp import tokens
from smartapp.audit import record_fhir_accesses
from smartapp.middleware import SmartHttpRequest
from smartapp.models import Launch

logger = logging.getLogger(__name__)

PATIENT_LEVELS = ("patient", "user")
SEARCHED_LEVELS = ("user",)  # a patient found by search is not the launch's patient/ context
_QUERY_MAX = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _client(launch: Launch) -> FhirClient:
    def on_unauthorized() -> str | None:
        try:
            return tokens.force_refresh(launch).access_token
        except tokens.RefreshError:
            logger.info("refresh after FHIR 401 failed (ehr=%s)", launch.ehr_id)
            return None

    return FhirClient(launch.iss, launch.access_token, on_unauthorized)


def _granted(launch: Launch) -> set[str] | None:
    # No `scope` in the token response: let the EHR's 403s decide rather than show nothing.
    return launch.granted_scopes() if launch.scope.strip() else None


def _render(
    request: SmartHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    waits: Iterable[timing.Interval] | None = None,
    accesses: Iterable[fhir.Access] = (),
    patient_id: str = "",
    status: int = 200,
) -> HttpResponse:
    """The one way a dashboard page is answered: EHR waits noted (Server-Timing), accesses audited.

    `waits` is None when the page asked the EHR nothing (no Server-Timing then).
    """
    launch = request.smart
    if waits is not None:
        timing.note_waits(request, waits)
    accesses = list(accesses)
    if accesses:
        request_id = str(getattr(request, "request_id", ""))[:64]
        record_fhir_accesses(launch, accesses, request_id=request_id, patient_id=patient_id)
    return render(request, template, {"launch": launch, "handle": launch.handle, **context}, status=status)


def _start_style(launch: Launch) -> Callable[[], tuple[dict[str, str], list[timing.Interval]]]:
    """Style hints from the cache, or a fetch on the shared pool alongside the FHIR queries.

    The returned function gives the hints and the time spent waiting on the EHR for them.
    """
    url = launch.smart_style_url
    if not url or not style.style_url_allowed(url, launch.iss):
        return lambda: ({}, [])
    hit = style.cached(url)
    if hit is not None:
        return lambda: (hit, [])
    fetching = parallel.start(_timed_style_fetch, url, launch.iss)

    def finish() -> tuple[dict[str, str], list[timing.Interval]]:
        props, waited = fetching()
        style.store(url, props)
        return props, [waited]

    return finish


def _timed_style_fetch(url: str, fhir_base: str) -> tuple[dict[str, str], timing.Interval]:
    started = time.perf_counter()
    props = style.fetch(url, fhir_base=fhir_base)
    return props, (started, time.perf_counter())


def _render_dashboard(
    request: SmartHttpRequest, patient_id: str, encounter_id: str, levels: tuple[str, ...], searched: bool
) -> HttpResponse:
    launch = request.smart
    panels = [p for p in PANELS if not (p == "banner" and launch.need_patient_banner is False)]
    finish_style = _start_style(launch)
    client = _client(launch)
    data = build_dashboard(client, patient_id, encounter_id, _granted(launch), panels=panels, levels=levels)
    props, style_waits = finish_style()
    context = {
        "d": data,
        "show_banner": "banner" in panels,
        "searched": searched,
        "style_css": style.css_declarations(props or {}),
    }
    waits = [*client.wait_intervals, *style_waits]
    template = "clinical/dashboard.html"
    return _render(request, template, context, waits=waits, accesses=data.accesses, patient_id=patient_id)


def _render_panel(
    request: SmartHttpRequest, name: str, patient_id: str, encounter_id: str, levels: tuple[str, ...]
) -> HttpResponse:
    if name not in PANELS:
        raise Http404("unknown panel")
    launch = request.smart
    client = _client(launch)
    data: Dashboard = build_dashboard(
        client, patient_id, encounter_id, _granted(launch), panels=[name], levels=levels
    )
    template = "clinical/_panel.html" if request.GET.get("partial") == "1" else "clinical/panel.html"
    context = {"d": data, "name": name, "searched": patient_id != launch.patient_id}
    return _render(
        request, template, context, waits=client.wait_intervals, accesses=data.accesses, patient_id=patient_id
    )


def _valid_patient_id(request: SmartHttpRequest, patient_id: str) -> HttpResponse | None:
    """A searched patient is only for launches without a patient: never switch a patient's launch."""
    launch = request.smart
    if not ID_PATTERN.match(patient_id):
        raise Http404("invalid patient id")
    if launch.patient_id:
        return render(
            request,
            "clinical/message.html",
            {
                "title": "Not available in this launch",
                "message": "This launch is for one patient only; other patients cannot be opened from it.",
                "handle": launch.handle,
            },
            status=403,
        )
    return None


@never_cache
@require_safe
def dashboard(request: SmartHttpRequest, handle: str) -> HttpResponse:
    launch = request.smart
    if not launch.patient_id:
        return _render_search(request, "")
    return _render_dashboard(request, launch.patient_id, launch.encounter_id, PATIENT_LEVELS, searched=False)


@never_cache
@require_safe
def panel(request: SmartHttpRequest, handle: str, name: str) -> HttpResponse:
    launch = request.smart
    if not launch.patient_id:
        raise Http404("no patient in context")
    return _render_panel(request, name, launch.patient_id, launch.encounter_id, PATIENT_LEVELS)


@never_cache
@require_safe
def patient_dashboard(request: SmartHttpRequest, handle: str, patient_id: str) -> HttpResponse:
    if request.smart.patient_id == patient_id:
        return redirect("clinical:dashboard", handle=handle)
    refused = _valid_patient_id(request, patient_id)
    if refused is not None:
        return refused
    return _render_dashboard(request, patient_id, "", SEARCHED_LEVELS, searched=True)


@never_cache
@require_safe
def patient_panel(request: SmartHttpRequest, handle: str, patient_id: str, name: str) -> HttpResponse:
    refused = _valid_patient_id(request, patient_id)
    if refused is not None:
        return refused
    return _render_panel(request, name, patient_id, "", SEARCHED_LEVELS)


@never_cache
@require_safe
def patient_search(request: SmartHttpRequest, handle: str) -> HttpResponse:
    if request.smart.patient_id:
        return redirect("clinical:dashboard", handle=handle)
    return _render_search(request, request.GET.get("q", ""))


def _render_search(request: SmartHttpRequest, raw_query: str) -> HttpResponse:
    launch = request.smart
    query = _CONTROL_RE.sub("", raw_query).strip()
    error, result, client = "", None, None
    if raw_query and not query:
        error = "Enter a name to search for."
    elif len(query) > _QUERY_MAX:
        error = f"Search for at most {_QUERY_MAX} characters."
    elif query:
        client = _client(launch)
        result = search_patients(client, query, _granted(launch))
    context = {"query": query[:_QUERY_MAX], "error": error, "result": result}
    return _render(
        request,
        "clinical/patient_search.html",
        context,
        waits=client.wait_intervals if client is not None else None,
        accesses=result.accesses if result is not None else (),
        status=400 if error else 200,
    )
