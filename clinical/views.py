"""Dashboard views: resolve the launch (middleware), query through the one FHIR client, render.

Every view takes `handle`, so LaunchContextMiddleware has already checked that this session
owns the launch and put it in `request.smart`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict

from django.db import connections
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from clinical import style, timing
from clinical.dashboard import PANELS, Dashboard, build_dashboard, search_patients
from clinical.fhir import ID_PATTERN, FhirClient
from clinical.parallel import THREAD_PREFIX
from smartapp import tokens
from smartapp.audit import FhirAccess, record_fhir_accesses
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
        finally:
            # Query threads are short-lived: never leave their DB connections open.
            if threading.current_thread().name.startswith(THREAD_PREFIX):
                connections.close_all()

    return FhirClient(launch.iss, launch.access_token, on_unauthorized)


def _granted(launch: Launch) -> set[str] | None:
    # No `scope` in the token response: let the EHR's 403s decide rather than show nothing.
    return launch.granted_scopes() if launch.scope.strip() else None


def _audit(request: SmartHttpRequest, launch: Launch, accesses, patient_id: str) -> None:
    if not accesses:
        return
    record_fhir_accesses(
        launch,
        [FhirAccess(**asdict(a)) for a in accesses],
        request_id=str(getattr(request, "request_id", ""))[:64],
        patient_id=patient_id,
    )


def _start_style(launch: Launch) -> tuple[dict[str, str] | None, Future | None, ThreadPoolExecutor | None]:
    """Style hints from cache, or a fetch started alongside the FHIR queries."""
    url = launch.smart_style_url
    if not url or not style.style_url_allowed(url, launch.iss):
        return {}, None, None
    hit = style.cached(url)
    if hit is not None:
        return hit, None, None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-style")
    return None, pool.submit(_timed_style_fetch, url, launch.iss), pool


def _timed_style_fetch(url: str, fhir_base: str) -> tuple[dict[str, str], tuple[float, float]]:
    started = time.perf_counter()
    props = style.fetch(url, fhir_base=fhir_base)
    return props, (started, time.perf_counter())


def _finish_style(request: SmartHttpRequest, launch: Launch, props, future, pool) -> str:
    if future is not None:
        try:
            props, waited = future.result()
        finally:
            pool.shutdown(wait=False)
        timing.note_waits(request, [waited])
        style.store(launch.smart_style_url, props)
    return style.css_declarations(props or {})


def _render_dashboard(
    request: SmartHttpRequest, patient_id: str, encounter_id: str, levels: tuple[str, ...], searched: bool
) -> HttpResponse:
    launch = request.smart
    panels = [p for p in PANELS if not (p == "banner" and launch.need_patient_banner is False)]
    props, future, pool = _start_style(launch)
    client = _client(launch)
    data = build_dashboard(client, patient_id, encounter_id, _granted(launch), panels=panels, levels=levels)
    timing.note_waits(request, client.wait_intervals)
    style_css = _finish_style(request, launch, props, future, pool)
    _audit(request, launch, data.accesses, patient_id)
    return render(
        request,
        "clinical/dashboard.html",
        {
            "d": data,
            "launch": launch,
            "handle": launch.handle,
            "show_banner": "banner" in panels,
            "searched": searched,
            "style_css": style_css,
        },
    )


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
    timing.note_waits(request, client.wait_intervals)
    _audit(request, launch, data.accesses, patient_id)
    template = "clinical/_panel.html" if request.GET.get("partial") == "1" else "clinical/panel.html"
    return render(
        request,
        template,
        {
            "d": data,
            "name": name,
            "handle": launch.handle,
            "searched": patient_id != launch.patient_id,
            "launch": launch,
        },
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
    error, result = "", None
    if raw_query and not query:
        error = "Enter a name to search for."
    elif len(query) > _QUERY_MAX:
        error = f"Search for at most {_QUERY_MAX} characters."
    elif query:
        result = search_patients(_client(launch), query, _granted(launch))
        _audit(request, launch, result.accesses, "")
    return render(
        request,
        "clinical/patient_search.html",
        {
            "launch": launch,
            "handle": launch.handle,
            "query": query[:_QUERY_MAX],
            "error": error,
            "result": result,
        },
        status=400 if error else 200,
    )
