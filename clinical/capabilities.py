"""What a FHIR server offers beyond plain search, learnt from its CapabilityStatement.

Only `Observation/$lastn` matters to the dashboard: where offered, one request gives the latest
readings of every code (every vital sign, every lab) instead of one search per measure. The
answer is kept per FHIR base in this process for an hour (a failed look-up for a minute); a
CapabilityStatement is public and the same for every user, and a stale answer costs at most one
fallback to per-measure searches.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from clinical import fhir

logger = logging.getLogger(__name__)

LASTN = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
_KEEP_SECONDS, _KEEP_FAILED_SECONDS = 3600.0, 60.0
_known: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


def offers_lastn(statement: Any) -> bool:
    """Whether a CapabilityStatement (plain JSON) lists Observation's $lastn operation."""
    for rest in statement.get("rest") or [] if isinstance(statement, dict) else []:
        for resource in (rest.get("resource") or []) if isinstance(rest, dict) else []:
            if not isinstance(resource, dict) or resource.get("type") != "Observation":
                continue
            for op in resource.get("operation") or []:
                if isinstance(op, dict) and (op.get("name") == "lastn" or op.get("definition") == LASTN):
                    return True
    return False


def supports_lastn(client: fhir.FhirClient) -> bool:
    """Asked once per server and process; any failure means "no" (per-measure searches work
    everywhere)."""
    now = time.monotonic()
    with _lock:
        hit = _known.get(client.base_url)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        answer, keep = offers_lastn(client.capabilities()), _KEEP_SECONDS
    except fhir.FhirError as exc:
        logger.info("no CapabilityStatement from the FHIR server (%s): per-measure searches", exc.message)
        answer, keep = False, _KEEP_FAILED_SECONDS
    with _lock:
        _known[client.base_url] = (now + keep, answer)
    return answer


def forget() -> None:
    """For tests: ask again."""
    with _lock:
        _known.clear()
