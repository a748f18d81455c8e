"""The population page: a group's patients from the summary table, for staff (Django auth).

Not part of any SMART launch: it needs a staff login (the admin's), which a patient or
clinician launch never creates, and it reads only the app's own summary table.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_safe

from population.models import PatientSummary, SyncRun
from smartapp.models import Ehr

ALL = "_all"  # URL stand-in for "every patient" (a FHIR id cannot start with "_")
PAGE_SIZE = 50
HISTORY = 5  # runs shown under a group's patients
A1C_HIGH = 9
UNSEEN_DAYS = 365
SORTS = {
    "name": [F("name").asc(), "patient_id"],
    "age": [F("birth_date").asc(nulls_last=True), "patient_id"],  # oldest first
    "bp": [F("bp_systolic").desc(nulls_last=True), "patient_id"],
    "a1c": [F("hba1c").desc(nulls_last=True), "patient_id"],
    "problems": [F("active_problems").desc(), "patient_id"],
    "seen": [F("last_encounter_at").asc(nulls_first=True), "patient_id"],  # longest unseen first
}
SORT_LABELS = {
    "name": "name",
    "age": "age (oldest first)",
    "bp": "latest systolic BP (highest first)",
    "a1c": "latest HbA1c (highest first)",
    "problems": "active problems (most first)",
    "seen": "last encounter (longest ago first)",
}
FILTERS = {
    "bp": ("BP uncontrolled", lambda now: Q(bp_controlled=False)),
    "a1c": (f"HbA1c \u2265 {A1C_HIGH} %", lambda now: Q(hba1c__gte=A1C_HIGH)),
    "unseen": (
        "Not seen in 12 months",
        lambda now: Q(last_encounter_at__lt=now - timedelta(days=UNSEEN_DAYS)) | Q(last_encounter_at=None),
    ),
}


@staff_member_required
@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """Every EHR and group with a summary, and its last sync."""
    groups = (
        PatientSummary.objects.values("ehr__slug", "ehr__name", "group_id")
        .annotate(patients=Count("pk"))
        .order_by("ehr__name", "group_id")
    )
    runs = {(r.ehr_id, r.group_id): r for r in SyncRun.objects.order_by("started_at")}
    slugs = dict(Ehr.objects.values_list("slug", "pk"))
    rows = [
        {**g, "key": g["group_id"] or ALL, "run": runs.get((slugs.get(g["ehr__slug"]), g["group_id"]))}
        for g in groups
    ]
    return render(request, "population/index.html", {"groups": rows})


@staff_member_required
@require_safe
def patients(request: HttpRequest, slug: str, group: str) -> HttpResponse:
    """One group's patients: sortable, filtered, paginated; each row starts a standalone launch."""
    ehr = get_object_or_404(Ehr, slug=slug)
    group_id = "" if group == ALL else group
    rows = PatientSummary.objects.filter(ehr=ehr, group_id=group_id)
    if not rows.exists() and not SyncRun.objects.filter(ehr=ehr, group_id=group_id).exists():
        raise Http404("No population sync for this group")
    now = timezone.now()
    active = [key for key in FILTERS if request.GET.get(key) == "1"]
    for key in active:
        rows = rows.filter(FILTERS[key][1](now))
    sort = request.GET.get("sort", "name")
    if sort not in SORTS:
        sort = "name"
    rows = rows.order_by(*SORTS[sort]).only(
        "patient_id",
        "name",
        "birth_date",
        "bp_systolic",
        "bp_diastolic",
        "bp_at",
        "bp_controlled",
        "hba1c",
        "hba1c_at",
        "active_problems",
        "last_encounter_at",
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    kept = [(key, "1") for key in active]

    def query(**changes: str) -> str:
        params = dict([*kept, ("sort", sort)], **changes)
        return "?" + urlencode({k: v for k, v in params.items() if v})

    runs = list(SyncRun.objects.filter(ehr=ehr, group_id=group_id)[:HISTORY])
    today = now.date()
    items = list(page.object_list)
    for row in items:
        born = row.birth_date
        row.age = (
            today.year - born.year - ((today.month, today.day) < (born.month, born.day)) if born else None
        )
        row.unseen = row.last_encounter_at is None or row.last_encounter_at < now - timedelta(
            days=UNSEEN_DAYS
        )
    return render(
        request,
        "population/patients.html",
        {
            "ehr": ehr,
            "group_id": group_id,
            "page": page,
            "items": items,
            "sort": sort,
            "sort_label": SORT_LABELS[sort],
            "filters": [(key, label, key in active) for key, (label, _q) in FILTERS.items()],
            "sort_links": {key: query(sort=key) for key in SORTS},
            "page_query": query(),
            "last_run": runs[0] if runs else None,
            "runs": runs,
            "a1c_high": A1C_HIGH,
        },
    )
