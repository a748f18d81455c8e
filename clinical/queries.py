"""The dashboard's FHIR interactions, planned before the wave: one read or search per panel,
one search per vital-sign measure (or two `$lastn` calls), the optional lab-report search."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace

from django.conf import settings

from clinical import display, fhir
from clinical.readings import LOINC, reference_id
from clinical.reports import LAB_CATEGORY

logger = logging.getLogger(__name__)

PANELS = ("banner", "encounter", "vitals", "labs", "problems")
STAYS = 10  # in-progress encounters looked at for a current stay (a patient has one or two)
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# One search per vital-sign measure; blood pressure as a panel and as separate readings in one.
VITAL_QUERIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (m.key, m.codes | (frozenset({SYSTOLIC, DIASTOLIC}) if m.key == "bp" else frozenset()))
    for m in display.VITALS
)


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
    elif "encounter" in panels:
        # No encounter in the launch context (a standalone launch): a hospital stay going on now
        # still sets the vital-sign charts' window (since admission) and is named on the page.
        params = {"patient": patient_id, "status": "in-progress"}
        query = Query(
            "encounter:stay", "Encounter", params=tuple(params.items()), max_entries=STAYS, optional=True
        )
        queries.append(query)
    if {"banner", "vitals", "labs"} & set(panels):
        # The flags need the patient's age and sex at each measurement, even without the banner.
        queries.append(Query("banner", "Patient", patient_id))
    return queries


def one_page(client: fhir.FhirClient, query: Query, params: dict[str, str]) -> fhir.SearchResult:
    """One page of `query`. An optional query refused outright (HTTP 400: some servers reject a
    `_sort` they do not support) is asked once more without `_sort`; it is sorted here anyway."""
    try:
        return client.search(query.resource_type, params, max_pages=1, max_entries=query.max_entries)
    except fhir.BadRequest:
        if not query.optional or "_sort" not in params:
            raise
        unsorted = {k: v for k, v in params.items() if k != "_sort"}
        return client.search(query.resource_type, unsorted, max_pages=1, max_entries=query.max_entries)
