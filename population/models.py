"""The population summary (one small row per patient and group) and the history of sync runs."""

from __future__ import annotations

from django.db import models

from smartapp.models import Ehr


class SyncRun(models.Model):
    """One `sync_population` export from one EHR: when, how much, and what went wrong."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ehr = models.ForeignKey(Ehr, on_delete=models.CASCADE, related_name="sync_runs")
    group_id = models.CharField(max_length=64, blank=True, default="", help_text="Blank: every patient.")
    group_name = models.CharField(max_length=200, blank=True, default="", help_text="The Group's own name.")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    since = models.CharField(max_length=40, blank=True, default="", help_text="_since sent (blank: full).")
    transaction_time = models.CharField(max_length=40, blank=True, default="")
    resources = models.PositiveIntegerField(default=0, help_text="Resources read from the export files.")
    patients = models.PositiveIntegerField(default=0, help_text="Summary rows written.")
    errors = models.TextField(blank=True, default="")
    deleted = models.PositiveIntegerField(
        default=0, help_text="Resources the EHR listed as deleted since the last run, applied to the summary."
    )
    deleted_skipped = models.PositiveIntegerField(
        default=0, help_text="Deletion entries that were no DELETE of Type/id: skipped (run incomplete)."
    )
    recomputed = models.PositiveIntegerField(
        default=0, help_text="Patients re-exported because the reading shown for them was deleted."
    )
    issues = models.JSONField(
        default=dict,
        blank=True,
        help_text="The EHR's error-file issues counted by severity and code; no text is kept.",
    )
    issue_lines_skipped = models.PositiveIntegerField(
        default=0, help_text="Error-file lines that were no OperationOutcome (run incomplete)."
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.ehr} {self.group_id or 'all'} {self.started_at:%Y-%m-%d %H:%M} {self.status}"

    def error_codes(self) -> dict[str, int]:
        """Issue codes of severity fatal or error (those that make a run incomplete), summed."""
        codes: dict[str, int] = {}
        for severity in ("fatal", "error"):
            for code, n in (self.issues or {}).get(severity, {}).items():
                codes[code] = codes.get(code, 0) + n
        return codes

    @property
    def lacks_data(self) -> bool:
        """The EHR reported errors, or some of its deletion or error entries could not be read:
        the export may miss data. Warnings and information alone do not count."""
        return bool(self.error_codes() or self.deleted_skipped or self.issue_lines_skipped)

    @property
    def incomplete(self) -> bool:
        """A successful run that may lack data: still a success, marked on the staff page."""
        return self.status == self.Status.SUCCEEDED and self.lacks_data

    def outcome_words(self) -> str:
        """What staff read in the run history: "12 resources deleted in the EHR were removed; the
        EHR reported 3 errors (2 not-found, 1 processing): this run may be incomplete"."""
        parts = []
        if self.deleted:
            parts.append(
                f"{_count(self.deleted, 'resource')} deleted in the EHR "
                f"{'was' if self.deleted == 1 else 'were'} removed"
            )
        if self.deleted_skipped:
            parts.append(
                f"{_count(self.deleted_skipped, 'deletion entry', 'deletion entries')} could not be read"
            )
        errors = self.error_codes()
        if errors:
            detail = ", ".join(
                f"{n} {code}" for code, n in sorted(errors.items(), key=lambda c: (-c[1], c[0]))
            )
            parts.append(f"the EHR reported {_count(sum(errors.values()), 'error')} ({detail})")
        if self.issue_lines_skipped:
            parts.append(
                f"{_count(self.issue_lines_skipped, 'line')} of the EHR's error files could not be read"
            )
        text = "; ".join(parts)
        if self.incomplete:
            text += ": this run may be incomplete"
        warnings = sum((self.issues or {}).get("warning", {}).values())
        if warnings:  # worth a look at the EHR, but no sign of missing data
            text += f"{'; the EHR also' if text else 'the EHR'} sent {_count(warnings, 'warning')}"
        return text[:1].upper() + text[1:]


def _count(n: int, singular: str, plural: str = "") -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class PatientSummary(models.Model):
    """What the population page shows for one patient of one group, refreshed by each run.

    Holds no raw resources: the latest BP and HbA1c, the ids of active problems (so an
    incremental run can add and resolve them idempotently), the last encounter, and the ids of
    the resources those readings came from (so a deletion of one of them is noticed).
    """

    ehr = models.ForeignKey(Ehr, on_delete=models.CASCADE, related_name="patient_summaries")
    group_id = models.CharField(max_length=64, blank=True, default="")
    patient_id = models.CharField(max_length=256)
    name = models.CharField(max_length=200, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    bp_systolic = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    bp_diastolic = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    bp_at = models.DateTimeField(null=True, blank=True)
    bp_controlled = models.BooleanField(null=True, blank=True, help_text="Last BP below the high cut-off.")
    hba1c = models.DecimalField("HbA1c (%)", max_digits=5, decimal_places=2, null=True, blank=True)
    hba1c_at = models.DateTimeField(null=True, blank=True)
    problem_ids = models.JSONField(default=list, blank=True)
    active_problems = models.PositiveIntegerField(default=0)
    last_encounter_at = models.DateTimeField(null=True, blank=True)
    source_ids = models.JSONField(
        default=dict,
        blank=True,
        help_text="Ids of the Observations/Encounter behind the latest BP, HbA1c and encounter, "
        "so that deleting one of them is noticed.",
    )
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "patient summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["ehr", "group_id", "patient_id"], name="population_summary_unique"
            )
        ]
        indexes = [
            models.Index(fields=["ehr", "group_id", "name"], name="population_by_name"),
            models.Index(fields=["ehr", "group_id", "bp_controlled"], name="population_by_bp"),
            models.Index(fields=["ehr", "group_id", "hba1c"], name="population_by_a1c"),
            models.Index(fields=["ehr", "group_id", "last_encounter_at"], name="population_by_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} ({self.group_id or 'all'})"
