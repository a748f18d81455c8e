"""One population sync: a bulk export from one EHR, summarised into the app's database."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.utils import timezone

from population.models import SyncRun
from population.summary import READINGS, Summarizer
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

    Nothing is written until every file has been read (the data, then the deletions, then the
    EHR's error files, and any second export for recomputed patients), and `since` only moves on
    success: an interrupted or failed run leaves the summary as it was, and the next run starts
    over. Error files do not fail a run; they mark it incomplete (`SyncRun.incomplete`).
    """
    since = "" if full else registration.since
    ehr, group_id = registration.ehr, registration.group_id
    run = SyncRun.objects.create(ehr=ehr, group_id=group_id, since=since)
    summarizer = Summarizer()
    export = bulk.BulkExport(registration, deadline=deadline, on_progress=on_progress)
    run.group_name = export.group_name()
    try:
        manifest = export.run(summarizer.add, since=since, on_deleted=summarizer.delete)
        if since:
            withdrawn = summarizer.plan(ehr, group_id)
            if withdrawn:
                _recompute(export, summarizer, withdrawn)
            run.recomputed = len(withdrawn)
        report = export.report
        run.deleted = summarizer.deletions
        run.deleted_skipped = report.deletions_skipped
        run.issues = report.by_severity()
        run.issue_lines_skipped = report.issue_lines_skipped
        run.resources = export.progress.resources
        run.patients = summarizer.save(ehr, group_id, run, full=not since, complete=not run.lacks_data)
        run.status = SyncRun.Status.SUCCEEDED
        run.transaction_time = manifest.transaction_time
        registration.since = manifest.transaction_time
        registration.save(update_fields=["since", "updated_at"])
        if run.incomplete:
            logger.warning("population sync ehr=%s incomplete: %s", registration.ehr_id, run.outcome_words())
    except bulk.ExportError as exc:
        logger.warning("population sync failed for ehr=%s: %s", registration.ehr_id, exc)
        run.resources = export.progress.resources
        run.status = SyncRun.Status.FAILED
        run.errors = str(exc)
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run


def _recompute(export: bulk.BulkExport, summarizer: Summarizer, patients: set[str]) -> None:
    """Re-export the Observations and Encounters of patients whose shown reading was deleted.

    Narrowed to those patients (a POST with `patient` parameters) when there are few enough and
    the EHR supports it; otherwise the group's, of which only theirs count. No `_since`: what
    came before the deleted reading is exactly what the incremental export did not send.
    """
    if len(patients) <= bulk.MAX_PATIENTS:
        try:
            export.run(summarizer.refresh, types=READINGS, patients=sorted(patients))
            return
        except bulk.PatientFilterRefused:
            # Not the EHR's text: a refusal of `patient` parameters may well name the patients.
            logger.info("population recompute: per-patient export refused; exporting the group's readings")
    export.run(summarizer.refresh, types=READINGS)
