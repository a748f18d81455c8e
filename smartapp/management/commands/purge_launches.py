"""`python manage.py purge_launches`: revoke and delete launches whose sessions can no longer use them.

Run it from cron next to Django's `clearsessions`. A launch outlives its browser session only as
encrypted rows nobody can reach; this removes them and, where the EHR offers revocation, ends
their tokens at the EHR too.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from smartapp.flow import revoke_and_delete
from smartapp.models import Launch

BATCH = 200


class Command(BaseCommand):
    help = "Revoke (where offered) and delete launches older than the session lifetime."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.SESSION_COOKIE_AGE,
            help="Age in seconds (default: SESSION_COOKIE_AGE, after which no session can own them).",
        )
        parser.add_argument("--no-revoke", action="store_true", help="Delete without calling the EHRs.")

    def handle(self, *args, **options) -> None:
        cutoff = timezone.now() - timedelta(seconds=options["older_than"])
        stale = Launch.objects.select_related("ehr").filter(created_at__lt=cutoff).order_by("pk")
        purged = 0
        while batch := list(stale[:BATCH]):
            if options["no_revoke"]:
                purged += Launch.objects.filter(pk__in=[launch.pk for launch in batch]).delete()[0]
            else:
                purged += revoke_and_delete(batch)
        self.stdout.write(f"{purged} launch(es) purged.")
