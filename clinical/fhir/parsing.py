"""Tolerant R4B parsing: EHR data validated by fhir.resources, repaired where the page allows.

Real EHRs send vendor fields and the odd malformed element; one of those must not cost the
clinician the whole resource (see `parse_resource`).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from pydantic import ValidationError

from clinical import fastparse

logger = logging.getLogger(__name__)

_MODEL_MODULES = {
    "Patient": "patient",
    "Encounter": "encounter",
    "Observation": "observation",
    "Condition": "condition",
    "DiagnosticReport": "diagnosticreport",
    "Practitioner": "practitioner",
    "Location": "location",
    "OperationOutcome": "operationoutcome",
}


def model_class(resource_type: str) -> type:
    """The fhir.resources R4B model for a resource type (R4 data; the default R5 models reject it)."""
    module = importlib.import_module(f"fhir.resources.R4B.{_MODEL_MODULES[resource_type]}")
    return getattr(module, resource_type)


def load_models() -> None:
    """Import every model class the client parses into (done at process start, not by a request)."""
    for resource_type in _MODEL_MODULES:
        model_class(resource_type)


# What the dashboard shows or checks, per type (JSON names). An invalid element elsewhere is
# dropped so the rest of the resource still shows; an invalid shown element makes it unreadable.
SHOWN_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset(
        {"id", "name", "birthDate", "gender", "identifier", "deceasedBoolean", "deceasedDateTime"}
    ),
    "Encounter": frozenset(
        {"id", "status", "class", "type", "period", "location", "participant", "reasonCode", "subject"}
    ),
    "Observation": frozenset(
        {"id", "status", "code", "category", "subject", "encounter", "issued", "dataAbsentReason"}
        | {"effectiveDateTime", "effectivePeriod", "effectiveInstant", "interpretation", "referenceRange"}
        | {"valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger"}
        | {"valueRange", "valueRatio", "valueTime", "valueDateTime", "component", "hasMember"}
    ),
    "Condition": frozenset(
        {"id", "clinicalStatus", "verificationStatus", "code", "category", "subject", "recordedDate"}
        | {"onsetDateTime", "onsetAge", "onsetPeriod", "onsetString"}
        | {"abatementDateTime", "abatementPeriod", "abatementString"}
    ),
    # presentedForm is never shown (only whether one was sent): a bad one is dropped, not fatal.
    "DiagnosticReport": frozenset(
        {"id", "status", "category", "code", "subject", "effectiveDateTime", "effectivePeriod"}
        | {"issued", "result", "conclusion"}
    ),
}


def _repair(error: dict[str, Any], shown: frozenset[str]) -> tuple[Any, ...] | None:
    """The path to delete to get past one validation error, or None when it cannot be dropped."""
    loc = tuple(error.get("loc") or ())
    if error.get("type") == "extra_forbidden":
        return loc or None  # a vendor field: never part of what the page shows
    if not loc or not isinstance(loc[0], str) or loc[0] in shown or loc[0] == "resourceType":
        return None
    if error.get("type") == "missing" and len(loc) == 1:
        return None  # a required element is absent: nothing to drop
    return loc[:2] if len(loc) > 1 and isinstance(loc[1], int) else loc[:1]  # a list item, or the element


def _delete_path(data: Any, loc: tuple[Any, ...]) -> bool:
    node = data
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1] if loc else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        del node[last]
        return True
    return False


def _delete_paths(data: Any, paths: set[tuple[Any, ...]]) -> bool:
    """Delete every path; a path under another one goes with it; list items go highest index first."""
    outer = [p for p in paths if not any(q != p and p[: len(q)] == q for q in paths)]
    order = sorted(outer, key=lambda loc: tuple((0, -k) if isinstance(k, int) else (1, str(k)) for k in loc))
    deleted = all([_delete_path(data, loc) for loc in order])
    for key in {loc[0] for loc in outer if len(loc) > 1}:
        if data.get(key) == []:
            del data[key]  # FHIR has no empty arrays
    return deleted


FAST_PATHS = {"Observation": fastparse.observation, "DiagnosticReport": fastparse.diagnostic_report}


def fast_parse(data: Any, resource_type: str) -> Any | None:
    """The resource built by the fast path (same result as validation for the shapes it accepts,
    ~10x faster), or None where the full model must decide."""
    fast_path = FAST_PATHS.get(resource_type)
    return fast_path(data) if fast_path is not None else None


def parse_resource(data: Any, resource_type: str) -> Any:
    """The fast path's resource, else `validate_resource`'s."""
    resource = fast_parse(data, resource_type)
    return resource if resource is not None else validate_resource(data, resource_type)


def validate_resource(data: Any, resource_type: str) -> Any:
    """Validate `data` with the R4B model, ignoring vendor-specific extra fields anywhere in it.

    fhir_core models are `extra="forbid"`, and neither a subclass (top level only) nor pydantic's
    per-call `extra=` override (not honoured by these models) nor the global model-config switch
    (must run before any import of the models, process-wide) reliably reaches nested elements.
    So: validate; delete exactly the unknown keys, and any invalid element the page does not
    show (`SHOWN_ELEMENTS`), then validate again. Clean data pays nothing extra; an entry with
    vendor fields pays a second validation. An invalid shown element makes the entry unreadable.
    `data` is freshly decoded JSON owned by the caller: the unknown keys are removed in place.
    Raises ValueError when the entry is not a readable `resource_type`.
    """
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        raise ValueError("not a " + resource_type)
    cls = model_class(resource_type)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
    except (KeyError, TypeError, AttributeError, RecursionError) as exc:
        # fhir_core itself trips on some input (an unknown contained resourceType is a KeyError):
        # the entry is unreadable, not the panel.
        raise ValueError(f"{resource_type} could not be validated ({type(exc).__name__})") from exc
    shown = SHOWN_ELEMENTS.get(resource_type, frozenset())
    dropped: set[str] = set()
    for _round in range(3):
        paths = [_repair(error, shown) for error in errors]
        if not all(paths) or not _delete_paths(data, set(paths)):
            break
        dropped |= {str(e["loc"][0]) for e in errors if e.get("type") != "extra_forbidden"}
        try:
            resource = cls.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            continue
        except (KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ValueError(f"{resource_type} could not be validated ({type(exc).__name__})") from exc
        if dropped:  # names only: the values may be PHI
            logger.info("%s: invalid elements not shown were dropped: %s", resource_type, sorted(dropped))
        return resource
    raise ValueError(f"{resource_type} failed validation ({len(errors)} problems)")
