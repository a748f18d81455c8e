"""What each dashboard panel holds, and how its query went (PanelState): plain frozen data.

The builders (banner.py, problems.py, labs, vitals) fill these; the templates read them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from django.conf import settings
from django.utils import timezone

from clinical import display, fhir
from clinical.attention import Attention, abnormal, not_judged
from clinical.labs import lab_groups
from clinical.readings import Measure, Person, When, observation_effective
from clinical.reports import LabGroup, Report, group_labs

_INPATIENT_CLASSES = {"IMP", "ACUTE", "NONAC", "OBSENC", "EMER", "SS"}


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
    found: bool = False  # not the launch's encounter: a stay in progress found by search

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

    @cached_property  # read several times by the template
    def attention(self) -> Attention:
        """The abnormal-results strip: a summary of the panels below, which keep their order."""
        return abnormal(self.vitals.measures, self.labs.measures)

    @cached_property
    def labs_not_judged(self) -> list[Measure]:
        """Latest lab values nothing judged, in the labs' clinical order (kidney first): the
        strip names them, since a blank flag reads as normal."""
        return [m for _g, ms in lab_groups(not_judged(self.labs.measures)) for m in ms]

    @property
    def labs_stale_days(self) -> int:
        return settings.CLINICAL_STALE_LABS_DAYS

    @property
    def labs_all_old(self) -> bool:
        """Labs were read, and every latest result is stale: "no abnormal labs" would mislead."""
        return bool(self.labs.measures) and all(m.stale for m in self.labs.measures)

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


# --- How a query went ------------------------------------------------------------------------


UNSORTED_NOTE = "the EHR did not return them newest first, so some recent results may be missing"


def sorted_newest_first(observations: Sequence[Any]) -> bool:
    """Did the server honour `_sort=-date`? Many ignore it, and then a capped page is not the latest."""
    stamps = [when.sort_key.timestamp() for when in map(observation_effective, observations) if when]
    return all(earlier >= later for earlier, later in itertools.pairwise(stamps))


def measures_state(result: fhir.SearchResult) -> PanelState:
    state = state_from_result(result, result.count)
    if state.capped and not sorted_newest_first(result.resources):
        return replace(state, truncated_reason=UNSORTED_NOTE)
    return state


def state_from_result(result: fhir.SearchResult, shown: int) -> PanelState:
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


def not_authorized(scope: str) -> PanelState:
    return PanelState("unauthorized", f"Not authorized: {scope} not granted.")
