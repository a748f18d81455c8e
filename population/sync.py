"""One population sync: a bulk export from one EHR, summarised into the app's database."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.utils import timezone

from population.models import SyncRun
from population.summary import Summarizer
from smartapp import bulk
from smartapp.models import BackendRegistration

logger = logging.getLogger(__name__)


def sync(
    registration: BackendRegistration,
    *,
    full: bool = False,
    deadline: float | None = None,
    on_progress: Callable[[bulk.Progress], None] | None = None,
) -> SyncRun:
    """Export (incrementally from the last transactionTime unless `full`) and refresh the summary.

    Nothing is written until every file has been read, and `since` only moves on success: an
    interrupted or failed run leaves the summary as it was, and the next run starts over.
    """
    since = "" if full else registration.since
    run = SyncRun.objects.create(ehr=registration.ehr, group_id=registration.group_id, since=since)
    summarizer = Summarizer()
    export = bulk.BulkExport(registration, deadline=deadline, on_progress=on_progress)
    run.group_name = export.group_name()
    try:
        manifest = export.run(summarizer.add, since=since)
        run.resources = export.progress.resources
        run.patients = summarizer.save(registration.ehr, registration.group_id, run, full=not since)
        run.transaction_time = manifest.transaction_time
        run.status = SyncRun.Status.SUCCEEDED
        if manifest.errors:
            run.errors = f"The EHR reported {len(manifest.errors)} error file(s) alongside the data."
        registration.since = manifest.transaction_time
        registration.save(update_fields=["since", "updated_at"])
    except bulk.ExportError as exc:
        logger.warning("population sync failed for ehr=%s: %s", registration.ehr_id, exc)
        run.resources = export.progress.resources
        run.status = SyncRun.Status.FAILED
        run.errors = str(exc)
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run
