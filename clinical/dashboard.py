"""What the dashboard shows, built from FHIR queries: no request, no rendering, plain data.

`build_dashboard` runs the independent queries in one parallel wave, each isolated: a failing,
forbidden or unauthorized query only affects its own panel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from clinical import capabilities, display, fhir
from clinical.banner import build_banner, build_encounter, human_name, mrn
from clinical.labs import build_labs
from clinical.panels import (
    UNSORTED_NOTE,
    Banner,
    Dashboard,
    EncounterPanel,
    MeasuresPanel,
    PanelState,
    PatientMatch,
    PatientSearch,
    ProblemsPanel,
    error_state,
    measures_state,
    not_authorized,
    sorted_newest_first,
    state_from_result,
)
from clinical.parallel import Step, run_parallel
from clinical.problems import build_problems
from clinical.queries import PANELS, VITAL_QUERIES, one_page, only_patient, plan_queries
from clinical.readings import Person, When
from clinical.reports import Report, group_labs, read_report
from clinical.vitals import build_vitals
from smartapp import scopes

logger = logging.getLogger(__name__)

_VITAL_NAMES = {m.key: m.name for m in display.VITALS}
_WHAT = {
    "banner": "the patient's details",
    "encounter": "the encounter",
    "vitals": "vital signs",
    "labs": "lab results",
    "problems": "the problem list",
}


def lab_reports(value: Any, base_url: str) -> tuple[Report, ...] | None:
    """The lab reports a wave fetched, or None (not asked, not granted, failed): labs then group
    by category, and the panel says nothing about it. A failure is logged without PHI."""
    if isinstance(value, fhir.SearchResult):
        return tuple(r for r in (read_report(res, base_url) for res in value.resources) if r is not None)
    if isinstance(value, Exception):
        status = getattr(value, "status_code", None)
        logger.warning(
            "lab reports not loaded (%s%s); labs grouped by category",
            type(value).__name__,
            f", HTTP {status}" if status else "",
        )
    return None


def build_vitals_panel(
    results: dict[str, Any], encounter_id: str, person: Person, now: datetime | None = None
) -> MeasuresPanel:
    """One panel from the per-measure searches: each failure is its own, named in the panel.

    The searches overlap (the category page holds some of each measure), so entries are kept
    once by id; a server that ignores `code` is harmless for the same reason.
    """
    ok = {k: v for k, v in results.items() if isinstance(v, fhir.SearchResult)}
    failed = {k: v for k, v in results.items() if not isinstance(v, fhir.SearchResult)}
    if not ok:
        first = next(iter(failed.values()), None)
        if isinstance(first, PanelState):
            return MeasuresPanel(first)
        return MeasuresPanel(error_state(first, _WHAT["vitals"]) if first else PanelState("absent"))
    seen: set[str] = set()
    observations: list[Any] = []
    warnings: list[str] = []
    skipped = 0
    for result in ok.values():
        skipped += result.skipped
        warnings.extend(w for w in result.warnings if w not in warnings)
        for obs in result.resources:
            key = obs.id or f"#{id(obs)}"
            if key not in seen:
                seen.add(key)
                observations.append(obs)
    names = _VITAL_NAMES
    by_lastn = "vitals:lastn" in ok  # every code at once: grouped by code, not sorted by date
    unsorted = [
        k for k, r in ok.items() if r.truncated and not by_lastn and not sorted_newest_first(r.resources)
    ]
    if unsorted:
        warnings.append(f"Vital signs: {UNSORTED_NOTE}.")
    for key, exc in failed.items():
        measure = key.split(":", 1)[1]
        label = names.get(measure, "other vital signs")
        state = exc if isinstance(exc, PanelState) else error_state(exc, label.lower())
        warnings.append(f"{label}: {state.message}")
    measures = build_vitals(tuple(observations), encounter_id, person, now)
    present = {m.key for m in measures}
    missing = tuple(
        names[k]
        for k, _codes in VITAL_QUERIES
        if k not in present
        and (by_lastn or f"vitals:{k}" in ok)
        and k != "pain"  # not every setting scores pain: its absence is not worth a line
        and (k != "head" or person.is_young_child())
    )
    capped = tuple(
        names[k]
        for k, _codes in VITAL_QUERIES
        if k in present
        and (
            ((r := ok.get(f"vitals:{k}")) is not None
            and r.truncated)
            or (by_lastn
            and len(next(m for m in measures if m.key == k).history) >= settings.FHIR_MEASURE_COUNT)
        )
    )
    state = PanelState("ok", shown=len(observations), skipped=skipped, warnings=tuple(warnings))
    return MeasuresPanel(
        state,
        measures,
        missing=missing,
        capped=capped,
        per_measure=settings.FHIR_MEASURE_COUNT,
    )


def current_stay(result: Any, patient_id: str) -> EncounterPanel | None:
    """The newest inpatient or emergency stay in progress, from the optional search; None when
    there is none, or the search was not granted or failed (the page does without it)."""
    if isinstance(result, Exception):
        logger.info("current-stay search failed (%s): charts keep 12 months", type(result).__name__)
    if not isinstance(result, fhir.SearchResult):
        return None
    # The same rule as the launch's own encounter (EncounterPanel.inpatient), checked per patient.
    panels = (build_encounter(e, patient_id) for e in result.resources)
    stays = [p for p in panels if p.state.ok and p.inpatient]
    if not stays:
        return None
    newest = max(stays, key=lambda p: p.start.sort_key.timestamp() if p.start else 0.0)
    return replace(newest, found=True)


def build_dashboard(
    client: fhir.FhirClient,
    patient_id: str,
    encounter_id: str | None = None,
    granted_scopes: Collection[str] | None = None,
    *,
    panels: Collection[str] = PANELS,
    levels: tuple[str, ...] = ("patient", "user"),
    today: date | None = None,
    max_workers: int | None = None,
) -> Dashboard:
    """Query and assemble the requested panels for one patient, in one parallel wave.

    `levels` are the scope levels that may authorize the queries: patient/ and user/ for the
    launch's own patient, only user/ for a patient found by search.
    """
    encounter_id = encounter_id or ""
    today = today or timezone.localdate()
    tasks: dict[str, Callable[[], Any]] = {}
    outcome: dict[str, Any] = {}

    # One look at the server's CapabilityStatement per process and hour (clinical/capabilities.py).
    lastn = (
        settings.FHIR_USE_LASTN
        and bool({"vitals", "labs"} & set(panels))
        and capabilities.supports_lastn(client)
    )
    for query in plan_queries(patient_id, encounter_id, panels, lastn=lastn):
        rtype = query.resource_type
        if query.resource_id:
            if not scopes.check(granted_scopes, rtype, "read", levels=levels).allowed:
                outcome[query.name] = not_authorized(scopes.describe(rtype, levels))
                continue
            tasks[query.name] = lambda q=query: client.read(q.resource_type, q.resource_id)
            continue
        params = dict(query.params)
        grant = scopes.check(granted_scopes, rtype, "search", levels=levels, params=params)
        if not grant.allowed:
            if query.optional:
                logger.debug("%s not granted: %s left out", rtype, query.name)
                continue
            outcome[query.name] = not_authorized(scopes.describe(rtype, levels))
            continue
        search = {**params, **dict(grant.restrictions)}
        if query.operation:
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p, operation=q.operation), patient_id
            )
        elif query.max_entries:
            search["_count"] = str(query.max_entries)
            tasks[query.name] = lambda q=query, p=search: only_patient(one_page(client, q, p), patient_id)
        else:
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p), patient_id
            )

    if isinstance(outcome.get("labs"), PanelState):
        tasks.pop("labs:reports", None)  # no labs to group
    now = timezone.now()
    vital_names = tuple(n for n in (*outcome, *tasks) if n.startswith("vitals:"))

    def given(got: dict[str, Any], name: str) -> Any:
        return got[name] if name in got else outcome.get(name)

    def built(got: dict[str, Any], name: str, make: Callable[[Any], Any]) -> Any:
        value = given(got, name)
        if value is None or isinstance(value, PanelState):
            return value
        if isinstance(value, Exception):
            return error_state(value, _WHAT[name])
        return make(value)

    def person_of(got: dict[str, Any]) -> Person:
        patient = given(got, "banner")
        if patient is None or isinstance(patient, (Exception, PanelState)):
            return Person()
        return Person.of(patient) if getattr(patient, "id", patient_id) in (None, patient_id) else Person()

    def known_person(got: dict[str, Any]) -> Person:  # the "person" step's result
        found = got.get("person")
        return found if isinstance(found, Person) else Person()

    def problems(r: fhir.SearchResult) -> ProblemsPanel:
        active, inactive, in_error = build_problems(r.resources)
        return ProblemsPanel(state_from_result(r, r.count), active, inactive, in_error)

    def lab_measures(got: dict[str, Any]) -> Any:
        person = known_person(got)
        return built(got, "labs", lambda r: (r, build_labs(r.resources, encounter_id, person, now)))

    def labs(got: dict[str, Any]) -> Any:
        measured = got.get("labs:measures")
        if not isinstance(measured, tuple):
            return measured
        r, measures = measured
        try:
            found = lab_reports(given(got, "labs:reports"), client.base_url)
            grouped, text_reports = group_labs(measures, r.resources, found)
        except Exception as exc:  # the optional reports must never cost the labs themselves
            logger.error("lab report grouping failed (%s); labs grouped by category", type(exc).__name__)
            grouped, text_reports = group_labs(measures)
        return MeasuresPanel(measures_state(r), measures, grouped=grouped, text_reports=text_reports)

    def encounter(got: dict[str, Any]) -> Any:
        found = built(got, "encounter", lambda e: build_encounter(e, patient_id))
        if not encounter_id:
            return current_stay(given(got, "encounter:stay"), patient_id) or found
        return found

    def vitals(got: dict[str, Any]) -> MeasuresPanel:
        results = {n: given(got, n) for n in vital_names}
        if not results:
            return MeasuresPanel(PanelState("absent"))
        return build_vitals_panel(results, encounter_id, known_person(got), now)

    def banner(got: dict[str, Any]) -> Any:
        if "banner" not in panels:
            return None
        return built(got, "banner", lambda p: build_banner(p, patient_id, today))

    # Each panel is built as soon as its own queries are in, while slower ones are still out.
    steps = {
        "person": Step(("banner",), person_of),
        "panel:banner": Step(("banner",), banner),
        "panel:encounter": Step(("encounter", "encounter:stay"), encounter),
        "panel:vitals": Step((*vital_names, "person"), vitals),
        "labs:measures": Step(("labs", "person"), lab_measures),
        "panel:labs": Step(("labs:measures", "labs:reports"), labs),
        "panel:problems": Step(("problems",), lambda got: built(got, "problems", problems)),
    }
    outcome.update(run_parallel(tasks, max_workers or settings.FHIR_MAX_WORKERS, steps))

    def panel(name: str, cls: type) -> Any:
        value = outcome.get(f"panel:{name}")
        if value is None:
            return cls(PanelState("absent"))
        if isinstance(value, Exception):  # a bug while building: that panel says so, the page stands
            return cls(error_state(value, _WHAT[name]))
        return cls(value) if isinstance(value, PanelState) else value

    return Dashboard(
        patient_id=patient_id,
        encounter_id=encounter_id,
        banner=panel("banner", Banner),
        encounter=panel("encounter", EncounterPanel),
        vitals=panel("vitals", MeasuresPanel),
        labs=panel("labs", MeasuresPanel),
        problems=panel("problems", ProblemsPanel),
        accesses=tuple(client.accesses),
        person=outcome["person"] if isinstance(outcome.get("person"), Person) else Person(),
    )


def search_patients(
    client: fhir.FhirClient, query: str, granted_scopes: Collection[str] | None, limit: int = 20
) -> PatientSearch:
    """Search this launch's EHR for patients by name (user-level launches without a patient)."""
    params = {"name": query}
    grant = scopes.check(granted_scopes, "Patient", "search", levels=("user",), params=params)
    if not grant.allowed:
        return PatientSearch(not_authorized("user/Patient.rs"), query)
    try:
        query_params = {**params, **dict(grant.restrictions)}  # a granular grant narrows the search
        result = client.search("Patient", query_params, max_pages=1, max_entries=limit)
    except fhir.FhirError as exc:
        return PatientSearch(error_state(exc, "patients"), query, accesses=tuple(client.accesses))
    matches = tuple(
        PatientMatch(
            patient_id=p.id,
            name=human_name(p.name) or "Name not recorded",
            gender=(p.gender or "").capitalize() or "Not recorded",
            birth_date=When.parse(p.birthDate),
            mrn=mrn(p.identifier),
        )
        for p in result.resources
        if p.id
    )
    return PatientSearch(state_from_result(result, len(matches)), query, matches, tuple(client.accesses))
