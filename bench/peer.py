"""The dashboard's data fetched three ways in the benchmark process, with one real launch's token.

(a) our clinical.fhir client, all the dashboard's queries in one parallel wave (as it runs them);
(b) the same client forced sequential (one worker);
(c) the SMART project's `fhirclient` library (the peer baseline), sequential as its API is.
Each does the same work, the queries `clinical.queries.plan_queries` lists: the Patient and
Encounter reads, one vital-signs search per measure (one page each), the laboratory search (paged
up to the same entry cap as ours), the lab reports (one page) and the Condition search, parsed
into that client's models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def dashboard_queries(patient: str, encounter: str) -> list[Any]:
    """The queries clinical.dashboard.build_dashboard makes for a patient (and encounter)."""
    from clinical.queries import plan_queries

    return plan_queries(patient, encounter)


def ours(fhir_base: str, token: str, queries: list[Any], max_workers: int) -> Callable[[], int]:
    """A run of our client over `queries` (max_workers=1: sequential); returns resources fetched."""
    from clinical.fhir import FhirClient, FhirError
    from clinical.parallel import run_parallel

    def run() -> int:
        client = FhirClient(fhir_base, token)
        tasks: dict[str, Callable[[], Any]] = {}
        for q in queries:
            if q.resource_id:
                tasks[q.name] = lambda q=q: [client.read(q.resource_type, q.resource_id)]
            else:
                tasks[q.name] = lambda q=q: client.search(
                    q.resource_type, dict(q.params), max_pages=1 if q.max_entries else None,
                    max_entries=q.max_entries,
                ).resources
        results = run_parallel(tasks, max_workers)
        failed = [name for name, value in results.items() if isinstance(value, (FhirError, Exception))]
        if failed:
            raise RuntimeError(f"our client failed on {failed}: {[results[n] for n in failed]}")
        return sum(len(v) for v in results.values())

    return run


def fhirclient_run(fhir_base: str, token: str, queries: list[Any]) -> Callable[[], int]:
    """A run of the `fhirclient` library (4.x) over `queries`, paging to the same cap as ours."""
    from django.conf import settings
    from fhirclient.auth import FHIROAuth2Auth
    from fhirclient.models.condition import Condition
    from fhirclient.models.diagnosticreport import DiagnosticReport
    from fhirclient.models.encounter import Encounter
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient
    from fhirclient.server import FHIRServer

    models = {
        "Patient": Patient,
        "Encounter": Encounter,
        "Observation": Observation,
        "Condition": Condition,
        "DiagnosticReport": DiagnosticReport,
    }
    server = FHIRServer(None, base_uri=fhir_base)  # one requests.Session: connection reuse, as ours
    auth = FHIROAuth2Auth()
    auth.access_token = token
    server.auth = auth
    cap = settings.FHIR_MAX_ENTRIES
    page_size = str(min(settings.FHIR_PAGE_SIZE, cap))

    def run() -> int:
        fetched = 0
        for q in queries:
            model = models[q.resource_type]
            if q.resource_id:
                model.read(q.resource_id, server)
                fetched += 1
                continue
            limit = q.max_entries or cap  # one page of max_entries, as ours, or paged to the cap
            size = str(q.max_entries) if q.max_entries else page_size
            search = model.where(struct={**dict(q.params), "_count": size})
            for n, _resource in enumerate(search.perform_resources_iter(server), start=1):
                fetched += 1
                if n >= limit:
                    break
        return fetched

    return run


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = fn()
    return (time.perf_counter() - start) * 1000, count
