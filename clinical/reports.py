"""Lab results grouped as the lab reported them: by DiagnosticReport where the EHR sends reports.

Each lab measure goes in the group of the newest report that lists its latest reading; the rest
keep the fixed category groups (labs.lab_groups). Report and category groups share one order,
the clinical order of their members (a metabolic panel before a blood count), never by arrival,
so the panel reads the same way every time. Reports with no structured results (a pathologist's
narrative) are listed by name, date and conclusion; their attached document is never shown here.

Reference: https://hl7.org/fhir/R4/diagnosticreport.html,
https://hl7.org/fhir/us/core/StructureDefinition-us-core-diagnosticreport-lab.html
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from clinical import names
from clinical.fhir.client import path_under_base
from clinical.labs import LAB_GROUP_ORDER, lab_groups, lab_key
from clinical.readings import EXCLUDED_STATUSES, Measure, When, codings_of, observation_when
from smartapp import safety

# v2-0074 LAB: the category US Core's laboratory DiagnosticReport profile requires.
LAB_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074|LAB"
# A report in these states says nothing about the results it lists.
IGNORED_STATUSES = {"entered-in-error", "cancelled"}
CONCLUSION_MAX = 300  # characters of a conclusion shown; the full text is in the EHR
TEXT_REPORTS_SHOWN = 10  # newest text-only reports listed; the EHR holds the rest
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
# Read as a pair wherever they were reported: eGFR is calculated from that creatinine.
KIDNEY_PAIR = ("creatinine", "egfr")


@dataclass(frozen=True)
class Report:
    """One lab report as the panel names it: title, time, status, conclusion, what it lists."""

    id: str
    title: str
    full_name: str = ""
    when: When | None = None  # effective (specimen collection), else issued
    issued: When | None = None
    status: str = ""
    conclusion: str = ""
    results: frozenset[str] = frozenset()  # ids of Observations on this FHIR server
    listed: tuple[tuple[str, str], ...] = ()  # (id, the reference's display) of each result listed
    narrative: bool = False  # a presentedForm (PDF, HTML...) was sent: read in the EHR

    @property
    def status_note(self) -> str:
        """Marked like a reading's status: nothing when final."""
        return "" if self.status in ("final", "") else self.status

    @property
    def order_key(self) -> tuple[datetime, datetime, str]:
        """Newest first: by its time, then the later issued (an amendment of the same draw)."""
        when = self.when.sort_key if self.when else _EPOCH
        issued = self.issued.sort_key if self.issued else _EPOCH
        return when, issued, self.id


@dataclass(frozen=True)
class LabGroup:
    """One table of the labs panel: a report's results, or a category's."""

    title: str
    measures: tuple[Measure, ...]
    key: str  # unique on the page (chart ids)
    report: Report | None = None
    not_received: tuple[str, ...] = ()  # results the report lists that the app did not receive


def observation_id(reference: str, base_url: str) -> str:
    """The Observation id a `result` reference names on this server, or "" (another type, another
    server, a contained or conditional reference). `urn:uuid:` references (as bundles carry them)
    name the Observation whose id is that uuid."""
    ref = (reference or "").strip()
    if ref.lower().startswith("urn:uuid:"):
        rid = ref[len("urn:uuid:") :]
        return rid if safety.FHIR_ID.match(rid) else ""
    if "://" in ref:
        # A query or fragment makes it a search or a part, not the Observation itself.
        split = urlsplit(ref)
        ref = "" if split.query or split.fragment else (path_under_base(ref, base_url) or "")
    parts = ref.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or parts[0] != "Observation" or not safety.FHIR_ID.match(parts[1]):
        return ""
    return parts[1]


def read_report(resource: Any, base_url: str) -> Report | None:
    """A DiagnosticReport as the panel uses it; None for one cancelled or entered in error."""
    if resource.status in IGNORED_STATUSES:
        return None
    title, full = names.report_name(getattr(resource.code, "text", None), codings_of(resource.code))
    effective = resource.effectiveDateTime
    if effective is None and resource.effectivePeriod is not None:
        effective = resource.effectivePeriod.start
    issued = When.parse(resource.issued)
    listed = tuple(
        (rid, " ".join((ref.display or "").split())[:80])
        for ref in resource.result or []
        if (ref.type or "Observation") == "Observation"
        and (rid := observation_id(ref.reference or "", base_url))
    )
    results = frozenset(rid for rid, _display in listed)
    conclusion = " ".join((resource.conclusion or "").split())
    if len(conclusion) > CONCLUSION_MAX:
        conclusion = conclusion[: CONCLUSION_MAX - 1].rstrip() + "…"
    return Report(
        id=resource.id or "",
        title=title or "Lab report",
        full_name=full,
        when=When.parse(effective) or issued,
        issued=issued,
        status=resource.status or "",
        conclusion=conclusion,
        results=results,
        listed=listed,
        narrative=bool(resource.presentedForm),
    )


def _latest_ids(observations: Iterable[Any], measures: Sequence[Measure]) -> dict[str, set[str]]:
    """For each measure, the ids of the Observations that are its latest reading (a duplicate
    sent twice at the same time is still that reading)."""
    latest = {m.key: m.latest.when for m in measures}
    found: dict[str, set[str]] = {}
    for obs in observations:
        if obs.status in EXCLUDED_STATUSES or not obs.id:
            continue
        key = lab_key(obs)
        if key in latest and observation_when(obs) == latest[key]:
            found.setdefault(key, set()).add(obs.id)
    return found


def _rank(members: Sequence[Measure]) -> int:
    order = {g: i for i, g in enumerate(LAB_GROUP_ORDER)}
    return min(order.get(m.group or "Other", len(order)) for m in members)


def group_labs(
    measures: Sequence[Measure],
    observations: Sequence[Any] = (),
    reports: Sequence[Report] | None = None,
) -> tuple[tuple[LabGroup, ...], tuple[Report, ...]]:
    """(groups, text-only reports): report and category groups in one clinical order.

    `reports` None (not asked for, not granted, or the query failed) gives today's category
    groups. Creatinine and eGFR stay together: both go to creatinine's report (eGFR is
    calculated from it), or to eGFR's when only eGFR is in one; each row keeps its own date.
    """
    reports = sorted(reports or (), key=lambda r: r.order_key, reverse=True)
    latest = _latest_ids(observations, measures) if reports else {}
    home: dict[str, int] = {}  # measure key -> its report's index in `reports` (0 = newest)
    for m in measures:
        ids = latest.get(m.key, set())
        found = next((i for i, r in enumerate(reports) if r.results & ids), None)
        if found is not None:
            home[m.key] = found
    present = {m.key for m in measures}
    paired = [home[k] for k in KIDNEY_PAIR if k in home]  # creatinine's report first
    if paired and present.issuperset(KIDNEY_PAIR):
        home.update(dict.fromkeys(KIDNEY_PAIR, paired[0]))

    members: dict[int, list[Measure]] = {}
    for m in measures:
        if m.key in home:
            members.setdefault(home[m.key], []).append(m)
    # One clinical order for report and category groups alike (kidney first: a Kidney category
    # group of urine albumin and creatinine clearance must not sink below the lipids); between
    # equals, reports first, the newer first.
    known = {obs.id for obs in observations if obs.id}
    ranked: list[tuple[tuple[int, int, int], LabGroup]] = []
    for n, (index, group_members) in enumerate(sorted(members.items()), start=1):
        ordered = tuple(m for _g, ms in lab_groups(group_members) for m in ms)
        report = reports[index]
        # A result the report lists but the app never received (a dangling reference, one not
        # shared with the app) must not vanish silently from a panel that looks complete.
        missing = tuple(display or "a result not named" for rid, display in report.listed if rid not in known)
        group = LabGroup(report.title, ordered, f"report-{n}", report, not_received=missing)
        ranked.append(((_rank(ordered), 0, index), group))
    rest = [m for m in measures if m.key not in home]
    for position, (name, ms) in enumerate(lab_groups(rest)):
        ranked.append(((_rank(ms), 1, position), LabGroup(name, tuple(ms), name)))
    groups = [group for _key, group in sorted(ranked, key=lambda item: item[0])]

    # Listed as text: nothing it lists is among the lab results read (a narrative report).
    text = tuple(r for r in reports if (r.conclusion or r.narrative) and not (r.results & known))
    return tuple(groups), text[:TEXT_REPORTS_SHOWN]
