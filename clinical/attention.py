"""The "Needs attention" strip: the abnormal latest results, what is recent, what nothing judged.

A summary of the panels below (which keep their order); see docs/clinical-display.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from clinical.readings import Measure

# Body size is a chronic state, charted, never an alert in the strip (whoever flagged it).
_NOT_IN_STRIP = {"weight", "height", "bmi", "head"}


@dataclass(frozen=True)
class Attention:
    """The abnormal-results strip: what is recent, and what is older (folded)."""

    recent: list[Measure]
    older: list[Measure]


def _recent_since(measures: Sequence[Measure], now: datetime) -> datetime:
    """The last CLINICAL_ATTENTION_DAYS or, when the newest of `measures` is older than that (an
    outpatient seen every few months), the day it was taken: the latest draw or visit counts."""
    since = now - timedelta(days=settings.CLINICAL_ATTENTION_DAYS)
    newest = max((m.latest.when.sort_key for m in measures if m.latest.when and not m.stale), default=None)
    if newest is not None and newest < since:
        zone = timezone.get_default_timezone()
        since = newest.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return since


def abnormal(
    vitals: Sequence[Measure], labs: Sequence[Measure], now: datetime | None = None
) -> Attention:
    """The abnormal-results strip. Critical first, then abnormal labs, then flagged vitals, newest
    first in each. Recent is counted for labs and for vital signs apart (`_recent_since`): today's
    vitals never fold away the abnormal results of the last blood draw two months ago. Critical
    results are always recent.
    """
    now = now or timezone.now()
    picked = []
    for tier, measures in ((0, labs), (1, vitals)):
        since = _recent_since(measures, now)
        for m in measures:
            if m.stale or not m.flagged or m.key in _NOT_IN_STRIP:
                continue
            when = m.latest.when
            recent = m.severity == 0 or (when is not None and when.sort_key >= since)
            stamp = when.sort_key.timestamp() if when else 0.0
            picked.append((0 if m.severity == 0 else 1 + tier, -stamp, recent, m))
    picked.sort(key=lambda item: (item[0], item[1]))
    return Attention([m for *_k, r, m in picked if r], [m for *_k, r, m in picked if not r])


def not_judged(labs: Sequence[Measure]) -> list[Measure]:
    """Latest lab values (not stale) that nothing judged: no interpretation and no range sent."""
    return [m for m in labs if m.latest.no_range and not m.stale]
