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

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.ehr} {self.group_id or 'all'} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class PatientSummary(models.Model):
    """What the population page shows for one patient of one group, refreshed by each run.

    Holds no raw resources: the latest BP and HbA1c, the ids of active problems (so an
    incremental run can add and resolve them idempotently), the last encounter.
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
