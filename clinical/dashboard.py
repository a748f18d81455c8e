"""What the dashboard shows, built from FHIR queries: no request, no rendering, plain data.

`build_dashboard` runs the independent queries in one parallel wave, each isolated: a failing,
forbidden or unauthorized query only affects its own panel.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

from django.conf import settings
from django.utils import timezone

from clinical import capabilities, display, fhir
from clinical.labs import build_labs
from clinical.parallel import run_parallel
from clinical.readings import (
    LOINC,
    Measure,
    Person,
    When,
    abnormal,
    codes_of,
    concept_full,
    concept_text,
    format_decimal,
    not_judged,
    observation_effective,
    reference_id,
)
from clinical.reports import LAB_CATEGORY, LabGroup, Report, group_labs, read_report
from clinical.vitals import build_vitals
from smartapp import scopes

logger = logging.getLogger(__name__)

PANELS = ("banner", "encounter", "vitals", "labs", "problems")
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# One search per vital-sign measure; blood pressure as a panel and as separate readings in one.
VITAL_QUERIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (m.key, m.codes | (frozenset({SYSTOLIC, DIASTOLIC}) if m.key == "bp" else frozenset()))
    for m in display.VITALS
)
_VITAL_NAMES = {m.key: m.name for m in display.VITALS}
@dataclass(frozen=True)
class PanelState:
    """How a panel's query went, and how complete its data is."""

    status: str = "ok"  # ok | unauthorized | error | absent
    message: str = ""
    detail: str = ""  # the EHR's OperationOutcome text
    retryable: bool = False
    shown: int = 0
    total: int | None = None
    truncated: bool = False
    truncated_reason: str = ""
    skipped: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def capped(self) -> bool:
        return self.truncated and self.truncated_reason == "capped"


@dataclass(frozen=True)
class Banner:
    state: PanelState
    patient_id: str = ""
    name: str = ""
    gender: str = ""
    birth_date: When | None = None
    age: str = ""
    mrn: str = ""
    deceased: bool = False
    deceased_when: When | None = None


@dataclass(frozen=True)
class EncounterPanel:
    state: PanelState
    encounter_class: str = ""
    types: tuple[str, ...] = ()
    status: str = ""
    start: When | None = None
    end: When | None = None
    locations: tuple[str, ...] = ()
    participants: tuple[tuple[str, str], ...] = ()  # (role, name)
    reasons: tuple[str, ...] = ()
    class_code: str = ""  # the v3 ActCode (IMP, EMER, AMB, ...)

    @property
    def finished(self) -> bool:
        return self.status in ("finished", "cancelled", "entered-in-error")

    @property
    def inpatient(self) -> bool:
        """An admission still going on: its charts follow the stay."""
        return self.status == "in-progress" and self.class_code in _INPATIENT_CLASSES


@dataclass(frozen=True)
class MeasuresPanel:
    state: PanelState
    measures: tuple[Measure, ...] = ()

    @property
    def groups(self) -> tuple[LabGroup, ...]:
        """Labs: by report where the EHR sent reports, else by category (clinical/reports.py)."""
        return self.grouped if self.grouped is not None else group_labs(self.measures)[0]

    missing: tuple[str, ...] = ()  # measures asked for that have no value
    capped: tuple[str, ...] = ()  # measures with more readings than were fetched
    per_measure: int = 0  # readings fetched per measure (the cap `capped` refers to)
    grouped: tuple[LabGroup, ...] | None = None  # labs: the groups, when built with the reports
    text_reports: tuple[Report, ...] = ()  # labs: reports with no structured results


@dataclass(frozen=True)
class Problem:
    name: str
    clinical_status: str
    verification: str
    category: str
    onset: str
    onset_when: When | None
    recorded: When | None
    abatement: str
    abatement_when: When | None = None
    full_name: str = ""  # the sender's full wording (a SNOMED fully specified name), for hover
    key: str = ""  # the condition's code: duplicates (problem list + encounter diagnosis) merge on it
    minor: bool = False  # a finding or situation (social, administrative), listed after disorders

    @property
    def categories(self) -> list[str]:
        return [c for c in self.category.split(", ") if c]


@dataclass(frozen=True)
class ProblemsPanel:
    state: PanelState
    active: tuple[Problem, ...] = ()
    inactive: tuple[Problem, ...] = ()
    entered_in_error: int = 0


@dataclass(frozen=True)
class Dashboard:
    patient_id: str
    encounter_id: str
    banner: Banner
    encounter: EncounterPanel
    vitals: MeasuresPanel
    labs: MeasuresPanel
    problems: ProblemsPanel
    accesses: tuple[fhir.Access, ...] = ()
    person: Person = field(default_factory=Person)

    @cached_property  # read twice by the template (recent, older)
    def attention(self) -> tuple[list[Measure], list[Measure]]:
        """The abnormal-results strip (recent, older): a summary of the panels below, which keep
        their order."""
        return abnormal(self.vitals.measures, self.labs.measures)

    @property
    def labs_not_judged(self) -> int:
        return not_judged(self.labs.measures)

    @property
    def adult_rules_not_applied(self) -> bool:
        age = self.person.age_at(When.parse(timezone.now()))
        return age is not None and not display.adult_rules_apply(age)


@dataclass(frozen=True)
class PatientMatch:
    patient_id: str
    name: str
    gender: str
    birth_date: When | None
    mrn: str


@dataclass(frozen=True)
class PatientSearch:
    state: PanelState
    query: str
    matches: tuple[PatientMatch, ...] = ()
    accesses: tuple[fhir.Access, ...] = ()


def _human_name(names: Any) -> str:
    names = names or []
    ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(n.use or "", 2))
    for name in ranked:
        if name.use == "old":
            continue
        given = " ".join(g for g in (name.given or []) if g)
        family = name.family or ""
        if family and given:
            return f"{family}, {given}"
        if family or given:
            return family or given
        if name.text:
            return name.text
    return ""


def _mrn(identifiers: Any) -> str:
    for ident in identifiers or []:
        if ident.value and "MR" in codes_of(ident.type):
            return ident.value
    return ""


def _age(birth: When | None, until: date) -> str:
    if birth is None or birth.precision == "year":
        return "" if birth is None else f"~{until.year - birth.value.year} y"
    born = birth.value if isinstance(birth.value, date) else birth.value.date()
    if isinstance(born, datetime):
        born = born.date()
    months = (until.year - born.year) * 12 + until.month - born.month - (1 if until.day < born.day else 0)
    if months < 0:
        return ""
    if months >= 24:
        return f"{months // 12} y"
    if months >= 1:
        return f"{months} mo"
    return f"{(until - born).days} d"


def build_banner(patient: Any, patient_id: str, today: date) -> Banner:
    if patient.id and patient.id != patient_id:
        # Never the wrong patient: a server answering with another patient's record is an error.
        return Banner(PanelState("error", "The EHR returned a different patient than requested."))
    birth = When.parse(patient.birthDate)
    deceased_when = When.parse(patient.deceasedDateTime)
    deceased = bool(patient.deceasedBoolean) or deceased_when is not None
    until = today
    if deceased_when is not None:
        died = deceased_when.value
        until = died.date() if isinstance(died, datetime) else died
    return Banner(
        PanelState("ok", shown=1),
        patient_id=patient_id,
        name=_human_name(patient.name) or "Name not recorded",
        gender=(patient.gender or "").capitalize() or "Not recorded",
        birth_date=birth,
        age=_age(birth, until),
        mrn=_mrn(patient.identifier),
        deceased=deceased,
        deceased_when=deceased_when,
    )


def build_encounter(encounter: Any, patient_id: str) -> EncounterPanel:
    subject = reference_id(encounter.subject, "Patient")
    if subject and subject != patient_id:
        return EncounterPanel(PanelState("error", "The encounter in context belongs to a different patient."))
    period = encounter.period
    participants = []
    for p in encounter.participant or []:
        role = ", ".join(t for t in (concept_text(t) for t in p.type or []) if t)
        who = (p.individual.display if p.individual else "") or ""
        if who or role:
            participants.append((role or "Participant", who or "Not named"))
    return EncounterPanel(
        PanelState("ok", shown=1),
        encounter_class=display.encounter_class_name(
            encounter.class_fhir.system, encounter.class_fhir.code, encounter.class_fhir.display
        )
        if encounter.class_fhir
        else "",
        class_code=(encounter.class_fhir.code or "").upper() if encounter.class_fhir else "",
        types=tuple(t for t in (concept_text(t) for t in encounter.type or []) if t),
        status=encounter.status or "",
        start=When.parse(period.start) if period else None,
        end=When.parse(period.end) if period else None,
        locations=tuple(
            loc.location.display for loc in encounter.location or [] if loc.location and loc.location.display
        ),
        participants=tuple(participants),
        reasons=tuple(t for t in (concept_text(c) for c in encounter.reasonCode or []) if t),
    )


_ACTIVE = {"active", "recurrence", "relapse"}
_INPATIENT_CLASSES = {"IMP", "ACUTE", "NONAC", "OBSENC", "EMER", "SS"}
# Reference: https://terminology.hl7.org/CodeSystem-condition-category.html (and US Core's)
_CATEGORIES = {
    "problem-list-item": "Problem list",
    "encounter-diagnosis": "Encounter diagnosis",
    "health-concern": "Health concern",
}
_AGE_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours"}


def _category_name(concept: Any) -> str:
    for code in codes_of(concept):
        if code in _CATEGORIES:
            return _CATEGORIES[code]
    return concept_text(concept)


def _age_unit(age: Any) -> str:
    code = (age.code or "").strip()
    return _AGE_UNITS.get(code, (age.unit or code).strip())


def build_problems(conditions: tuple[Any, ...]) -> tuple[tuple[Problem, ...], tuple[Problem, ...], int]:
    active, inactive, in_error = [], [], 0
    for cond in conditions:
        verification = next(iter(codes_of(cond.verificationStatus)), "")
        if verification == "entered-in-error":
            in_error += 1
            continue
        clinical = next(iter(codes_of(cond.clinicalStatus)), "")
        onset_when = When.parse(cond.onsetDateTime) or (
            When.parse(cond.onsetPeriod.start) if cond.onsetPeriod else None
        )
        onset = ""
        if onset_when is None:
            if cond.onsetAge is not None and cond.onsetAge.value is not None:
                onset = f"age {format_decimal(cond.onsetAge.value)} {_age_unit(cond.onsetAge)}".strip()
            elif cond.onsetString:
                onset = cond.onsetString
        abatement_when = When.parse(cond.abatementDateTime) or (
            When.parse(cond.abatementPeriod.start) if cond.abatementPeriod else None
        )
        abatement = cond.abatementString or ""
        short, full = concept_full(cond.code)
        problem = Problem(
            name=_HCC.sub("", short) or "Unnamed condition",
            full_name=full,
            key=_problem_key(cond.code, short),
            minor=_is_minor(cond.code),
            clinical_status=clinical or "not recorded",
            verification=verification or "not recorded",
            category=", ".join(t for t in (_category_name(c) for c in cond.category or []) if t),
            onset=onset,
            onset_when=onset_when,
            recorded=When.parse(cond.recordedDate),
            abatement=abatement,
            abatement_when=abatement_when,
        )
        # refuted means "not present": never list it among the active problems.
        if (clinical in _ACTIVE or not clinical) and verification != "refuted":
            active.append(problem)
        else:
            inactive.append(problem)

    def order(p: Problem) -> tuple[bool, float, str]:
        """Disorders first, then findings and situations (social, administrative); newest first."""
        when = p.onset_when or p.recorded
        return (p.minor, -(when.sort_key.timestamp()) if when else 0.0, p.name.lower())

    return tuple(sorted(_merged(active), key=order)), tuple(sorted(inactive, key=order)), in_error


# Epic appends the billing category to problem names; it means nothing at the bedside.
_HCC = re.compile(r"\s*\(HCC\)\s*$")
# SNOMED CT hierarchies that are not diseases: listed after the disorders.
_MINOR_TAGS = ("(finding)", "(situation)", "(observable entity)", "(event)", "(social concept)")


def _is_minor(code: Any) -> bool:
    codings = getattr(code, "coding", None) or []
    texts = [getattr(code, "text", None) or "", *(c.display or "" for c in codings)]
    return any(t.strip().endswith(_MINOR_TAGS) for t in texts)


def _problem_key(code: Any, name: str) -> str:
    for coding in getattr(code, "coding", None) or []:
        if coding.code:
            return f"{coding.system or ''}|{coding.code}"
    return "text:" + name.strip().lower()


def _merged(problems: list[Problem]) -> list[Problem]:
    """One row per condition: the same code on the problem list and as an encounter diagnosis
    is one problem with both categories and the earliest onset."""
    by_key: dict[str, Problem] = {}
    for p in problems:
        kept = by_key.get(p.key)
        if kept is None:
            by_key[p.key] = p
            continue
        categories = ", ".join(dict.fromkeys([*kept.categories, *p.categories]))
        earliest = min((x for x in (kept, p) if x.onset_when), key=lambda x: x.onset_when, default=kept)
        by_key[p.key] = replace(earliest, category=categories)
    return list(by_key.values())


# --- Queries and the parallel wave -----------------------------------------------------------


def only_patient(result: fhir.SearchResult, patient_id: str) -> fhir.SearchResult:
    """Never another patient's data: drop entries whose subject names a different patient.

    A server that ignores a search parameter it does not support returns everyone's entries;
    the patient filter is checked here again rather than trusted.
    """
    kept = tuple(
        r
        for r in result.resources
        if reference_id(getattr(r, "subject", None), "Patient") in ("", patient_id)
    )
    dropped = result.count - len(kept)
    if not dropped:
        return result
    logger.warning("dropped %d search entries that belong to another patient", dropped)
    note = f"{dropped} entries for another patient were returned by the EHR and are not shown."
    return replace(result, resources=kept, warnings=(*result.warnings, note))


UNSORTED_NOTE = "the EHR did not return them newest first, so some recent results may be missing"


def _sorted_newest_first(observations: Sequence[Any]) -> bool:
    """Did the server honour `_sort=-date`? Many ignore it, and then a capped page is not the latest."""
    stamps = [when.sort_key.timestamp() for when in map(observation_effective, observations) if when]
    return all(earlier >= later for earlier, later in itertools.pairwise(stamps))


def _measures_state(result: fhir.SearchResult) -> PanelState:
    state = _state_from_result(result, result.count)
    if state.capped and not _sorted_newest_first(result.resources):
        return replace(state, truncated_reason=UNSORTED_NOTE)
    return state


def _state_from_result(result: fhir.SearchResult, shown: int) -> PanelState:
    return PanelState(
        "ok",
        shown=shown,
        total=result.total,
        truncated=result.truncated,
        truncated_reason=result.truncated_reason,
        skipped=result.skipped,
        warnings=result.warnings,
    )


def error_state(exc: Exception, what: str) -> PanelState:
    """A panel's failure, said plainly, with the EHR's own words when it gave any."""
    if isinstance(exc, fhir.Forbidden):
        message = f"Not authorized: the EHR refused access to {what}."
        return PanelState("unauthorized", message, exc.diagnostics)
    if isinstance(exc, fhir.Unauthorized):
        return PanelState(
            "unauthorized",
            "The EHR no longer accepts this session's access. Open the app again from the EHR.",
            exc.diagnostics,
        )
    if isinstance(exc, fhir.NotFound):
        return PanelState("error", f"The EHR has no record of {what}.", exc.diagnostics)
    if isinstance(exc, fhir.RateLimited):
        wait = f" Try again in {exc.retry_after} s." if exc.retry_after else ""
        return PanelState("error", f"The EHR is busy and did not send {what}.{wait}", exc.diagnostics, True)
    if isinstance(exc, fhir.Timeout):
        return PanelState("error", f"The EHR did not send {what} in time.", "", True)
    if isinstance(exc, fhir.FhirError):
        return PanelState("error", f"Could not load {what}: {exc.message}.", exc.diagnostics, exc.retryable)
    return PanelState("error", f"Could not display {what}.", "", True)


def _not_authorized(scope: str) -> PanelState:
    return PanelState("unauthorized", f"Not authorized: {scope} not granted.")


def _category_params(patient_id: str, category: str) -> dict[str, str]:
    return {"patient": patient_id, "category": category, "_sort": "-date"}


def code_param(codes: Collection[str]) -> str:
    """A token search for any of `codes` (LOINC), comma meaning OR."""
    return ",".join(f"{LOINC}|{code}" for code in sorted(codes))


@dataclass(frozen=True)
class Query:
    """One FHIR interaction of the dashboard's wave: a read (`resource_id`) or a search."""

    name: str  # "banner", "vitals:hr", ...; the part before ":" is the panel it feeds
    resource_type: str
    resource_id: str = ""
    params: tuple[tuple[str, str], ...] = ()
    max_entries: int | None = None  # None: the client's cap; otherwise one page of this size
    operation: str = ""  # a searchset operation on the type ("lastn")
    optional: bool = False  # refines a panel: not granted or failing, the panel does without it

    @property
    def panel(self) -> str:
        return self.name.split(":", 1)[0]


def plan_queries(
    patient_id: str, encounter_id: str = "", panels: Collection[str] = PANELS, *, lastn: bool = False
) -> list[Query]:
    """The interactions a dashboard makes, slowest first (they leave one after another).

    Where the server offers `Observation/$lastn` (`lastn`), one request per category brings the
    latest readings of every code. Otherwise vital signs are asked for per measure (newest
    first, one small page each), so a rare measure (a weight among thousands of home blood
    pressures) is never pushed out of a capped page; one more page of the category catches
    vital signs of codes the app does not know.
    """
    queries: list[Query] = []
    if lastn:
        for name, category, most in (
            ("vitals:lastn", "vital-signs", settings.FHIR_MEASURE_COUNT),
            ("labs", "laboratory", settings.FHIR_LAB_HISTORY),
        ):
            if name.split(":")[0] in panels:
                params = {"patient": patient_id, "category": category, "max": str(most)}
                queries.append(Query(name, "Observation", params=tuple(params.items()), operation="lastn"))
    elif "vitals" in panels:
        count = settings.FHIR_MEASURE_COUNT
        for key, codes in VITAL_QUERIES:
            params = {**_category_params(patient_id, "vital-signs"), "code": code_param(codes)}
            query = Query(f"vitals:{key}", "Observation", params=tuple(params.items()), max_entries=count)
            queries.append(query)
        params = _category_params(patient_id, "vital-signs")
        queries.append(Query("vitals:*", "Observation", params=tuple(params.items()), max_entries=count))
    if "labs" in panels and not lastn:
        params = _category_params(patient_id, "laboratory")
        queries.append(Query("labs", "Observation", params=tuple(params.items())))
    if "labs" in panels:
        # The lab's own grouping of the results, newest first; without it labs group by category.
        params = {"patient": patient_id, "category": LAB_CATEGORY, "_sort": "-date"}
        query = Query(
            "labs:reports",
            "DiagnosticReport",
            params=tuple(params.items()),
            max_entries=settings.FHIR_REPORT_COUNT,
            optional=True,
        )
        queries.append(query)
    if "problems" in panels:
        # Condition has no `date` search parameter, so no _sort: sorted here instead.
        queries.append(Query("problems", "Condition", params=(("patient", patient_id),)))
    if "encounter" in panels and encounter_id:
        queries.append(Query("encounter", "Encounter", encounter_id))
    if {"banner", "vitals", "labs"} & set(panels):
        # The flags need the patient's age and sex at each measurement, even without the banner.
        queries.append(Query("banner", "Patient", patient_id))
    return queries


_WHAT = {
    "banner": "the patient's details",
    "encounter": "the encounter",
    "vitals": "vital signs",
    "labs": "lab results",
    "problems": "the problem list",
}


def _one_page(client: fhir.FhirClient, query: Query, params: dict[str, str]) -> fhir.SearchResult:
    """One page of `query`. An optional query refused outright (HTTP 400: some servers reject a
    `_sort` they do not support) is asked once more without `_sort`; it is sorted here anyway."""
    try:
        return client.search(query.resource_type, params, max_pages=1, max_entries=query.max_entries)
    except fhir.BadRequest:
        if not query.optional or "_sort" not in params:
            raise
        unsorted = {k: v for k, v in params.items() if k != "_sort"}
        return client.search(query.resource_type, unsorted, max_pages=1, max_entries=query.max_entries)


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


def build_vitals_panel(results: dict[str, Any], encounter_id: str, person: Person) -> MeasuresPanel:
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
        k for k, r in ok.items() if r.truncated and not by_lastn and not _sorted_newest_first(r.resources)
    ]
    if unsorted:
        warnings.append(f"Vital signs: {UNSORTED_NOTE}.")
    for key, exc in failed.items():
        measure = key.split(":", 1)[1]
        label = names.get(measure, "other vital signs")
        state = exc if isinstance(exc, PanelState) else error_state(exc, label.lower())
        warnings.append(f"{label}: {state.message}")
    measures = build_vitals(tuple(observations), encounter_id, person)
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
                outcome[query.name] = _not_authorized(scopes.describe(rtype, levels))
                continue
            tasks[query.name] = lambda q=query: client.read(q.resource_type, q.resource_id)
            continue
        params = dict(query.params)
        grant = scopes.check(granted_scopes, rtype, "search", levels=levels, params=params)
        if not grant.allowed:
            if query.optional:
                logger.debug("%s not granted: %s left out", rtype, query.name)
                continue
            outcome[query.name] = _not_authorized(scopes.describe(rtype, levels))
            continue
        search = {**params, **dict(grant.restrictions)}
        if query.operation:
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p, operation=q.operation), patient_id
            )
        elif query.max_entries:
            search["_count"] = str(query.max_entries)
            tasks[query.name] = lambda q=query, p=search: only_patient(_one_page(client, q, p), patient_id)
        else:
            tasks[query.name] = lambda q=query, p=search: only_patient(
                client.search(q.resource_type, p), patient_id
            )

    if isinstance(outcome.get("labs"), PanelState):
        tasks.pop("labs:reports", None)  # no labs to group
    outcome.update(run_parallel(tasks, max_workers or settings.FHIR_MAX_WORKERS))

    def built(name: str, make: Callable[[Any], Any]) -> Any:
        value = outcome.get(name)
        if value is None or isinstance(value, PanelState):
            return value
        if isinstance(value, Exception):
            return error_state(value, _WHAT[name])
        return make(value)

    def problems(r: fhir.SearchResult) -> ProblemsPanel:
        active, inactive, in_error = build_problems(r.resources)
        return ProblemsPanel(_state_from_result(r, r.count), active, inactive, in_error)

    patient = outcome.get("banner")
    person = Person.of(patient) if patient is not None and not isinstance(
        patient, (Exception, PanelState)
    ) and getattr(patient, "id", patient_id) in (None, patient_id) else Person()

    def labs(r: fhir.SearchResult) -> MeasuresPanel:
        measures = build_labs(r.resources, encounter_id, person)
        try:
            found = lab_reports(outcome.get("labs:reports"), client.base_url)
            grouped, text_reports = group_labs(measures, r.resources, found)
        except Exception as exc:  # the optional reports must never cost the labs themselves
            logger.error("lab report grouping failed (%s); labs grouped by category", type(exc).__name__)
            grouped, text_reports = group_labs(measures)
        return MeasuresPanel(_measures_state(r), measures, grouped=grouped, text_reports=text_reports)

    def panel(value: Any, cls: type) -> Any:
        if value is None:
            return cls(PanelState("absent"))
        return cls(value) if isinstance(value, PanelState) else value

    vitals_results = {k: v for k, v in outcome.items() if k.startswith("vitals:")}
    return Dashboard(
        patient_id=patient_id,
        encounter_id=encounter_id,
        banner=panel(
            built("banner", lambda p: build_banner(p, patient_id, today)) if "banner" in panels else None,
            Banner,
        ),
        encounter=panel(built("encounter", lambda e: build_encounter(e, patient_id)), EncounterPanel),
        vitals=build_vitals_panel(vitals_results, encounter_id, person) if vitals_results else MeasuresPanel(
            PanelState("absent")
        ),
        labs=panel(built("labs", labs), MeasuresPanel),
        problems=panel(built("problems", problems), ProblemsPanel),
        accesses=tuple(client.accesses),
        person=person,
    )


def search_patients(
    client: fhir.FhirClient, query: str, granted_scopes: Collection[str] | None, limit: int = 20
) -> PatientSearch:
    """Search this launch's EHR for patients by name (user-level launches without a patient)."""
    params = {"name": query}
    grant = scopes.check(granted_scopes, "Patient", "search", levels=("user",), params=params)
    if not grant.allowed:
        return PatientSearch(_not_authorized("user/Patient.rs"), query)
    try:
        query_params = {**params, **dict(grant.restrictions)}  # a granular grant narrows the search
        result = client.search("Patient", query_params, max_pages=1, max_entries=limit)
    except fhir.FhirError as exc:
        return PatientSearch(error_state(exc, "patients"), query, accesses=tuple(client.accesses))
    matches = tuple(
        PatientMatch(
            patient_id=p.id,
            name=_human_name(p.name) or "Name not recorded",
            gender=(p.gender or "").capitalize() or "Not recorded",
            birth_date=When.parse(p.birthDate),
            mrn=_mrn(p.identifier),
        )
        for p in result.resources
        if p.id
    )
    return PatientSearch(_state_from_result(result, len(matches)), query, matches, tuple(client.accesses))
