"""`manage.py sync_population [--ehr SLUG] [--full]`: a bulk export per configured EHR/group.

For cron or a scheduled job: a progress line on a terminal, one JSON object per event
otherwise; exits non-zero when any export failed.
"""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from population.models import SyncRun
from population.sync import sync
from smartapp import bulk
from smartapp.models import BackendRegistration


class Command(BaseCommand):
    help = "Run a Bulk Data export for each EHR with a backend-services registration; refresh the summary."

    def add_arguments(self, parser):
        parser.add_argument("--ehr", action="append", default=[], help="only this EHR (slug); repeatable")
        parser.add_argument("--full", action="store_true", help="export everything (ignore the last _since)")
        parser.add_argument(
            "--deadline", type=float, help="seconds one export may take (SMART_BULK_DEADLINE)"
        )

    def handle(self, *args, **options):
        registrations = BackendRegistration.objects.select_related("ehr").filter(
            enabled=True, ehr__enabled=True
        )
        if options["ehr"]:
            registrations = registrations.filter(ehr__slug__in=options["ehr"])
        registrations = list(registrations.order_by("ehr__name"))
        if not registrations:
            raise CommandError("No enabled EHR has a backend-services registration.")
        tty = self.stdout.isatty()
        failed = 0
        for registration in registrations:
            label = f"{registration.ehr.slug}/{registration.group_id or 'all'}"
            started = time.monotonic()
            self._event(tty, "start", label)

            def progress(p: bulk.Progress, label=label, started=started) -> None:
                if tty:
                    files = f"files {p.files_done}/{p.files}, {p.resources} resources"
                    line = f"\r{label}: {p.phase} {p.server} {files}"
                    self.stdout.write(f"{line} ({time.monotonic() - started:.0f}s)\033[K", ending="")
                    self.stdout.flush()

            run = sync(registration, full=options["full"], deadline=options["deadline"], on_progress=progress)
            if tty:
                self.stdout.write("")
            failed += run.status != SyncRun.Status.SUCCEEDED
            self._event(
                tty,
                "finish",
                label,
                status=run.status,
                resources=run.resources,
                patients=run.patients,
                deleted=run.deleted,
                incomplete=run.incomplete,
                issues=run.issues,
                seconds=round(time.monotonic() - started, 1),
                error=run.errors,
                notes=run.outcome_words(),
            )
        if failed:
            raise CommandError(f"{failed} of {len(registrations)} export(s) failed.")

    def _event(self, tty: bool, event: str, label: str, **fields) -> None:
        if tty:
            if event == "finish":
                words = f"{fields['status']}: {fields['resources']} resources, {fields['patients']} patients"
                words += f" in {fields['seconds']}s" + (f" — {fields['error']}" if fields["error"] else "")
                words += f". {fields['notes']}" if fields["notes"] else ""
                self.stdout.write(f"{label}: {words}")
            return
        record = {"event": f"sync_population.{event}", "target": label, **fields}
        self.stdout.write(json.dumps(record, separators=(",", ":")))
        sys.stdout.flush()
