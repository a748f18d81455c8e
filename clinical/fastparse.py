"""A fast path for parsing Observations (and lab DiagnosticReports): the common shapes, checked as
strictly as the model does.

Full pydantic validation of fhir.resources models costs ~0.3 ms per Observation (every nested
element runs its own Python validator), which dominated the dashboard of a patient with many
results. The dashboard reads a known subset of Observation; for entries made only of that
subset, this module checks each value against the same FHIR rules the models apply (the
primitive regexes, one value[x], required elements) and builds the R4B model instances with
`model_construct` (no second validation). Anything else — an unknown key, an extension, a
partial date, a type it does not handle — returns None and the caller validates the entry in
full, so odd data keeps exactly the tolerant behaviour of `clinical.fhir.parse_resource`.
tests/clinical/test_fastparse.py checks both paths give identical resources on the sandbox data.
Reference: https://hl7.org/fhir/R4/observation.html, https://hl7.org/fhir/R4/datatypes.html
"""

from __future__ import annotations

import decimal
import marshal
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import (
    Observation,
    ObservationComponent,
    ObservationReferenceRange,
)
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir_core.types import DateTime, Instant
from fhir_core.types import Decimal as FhirDecimal

_STRING = re.compile(r"[ \r\n\t\S]+")
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_URI = re.compile(r"\S*")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# A full dateTime/instant with seconds and zone (partial dates and leap seconds go the slow way).
_FULL_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:(?!60)\d{2}(\.\d{1,6})?(Z|[+\-]\d{2}:\d{2})")
_COMPARATORS = {"<", "<=", ">=", ">"}


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _construct(cls: type, fields: dict[str, Any]) -> Any:
    """`cls.model_construct(**fields)` without its per-call default filling (the hot spot here).

    Same result as pydantic's model_construct for these models (no private attributes, no
    extras, no post-init): the defaults dict is computed once per class.
    """
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        probe = cls.model_construct()
        if probe.__pydantic_private__ or probe.__pydantic_extra__ or cls.__pydantic_post_init__:
            return cls.model_construct(**fields)
        defaults = _DEFAULTS.setdefault(cls, dict(probe.__dict__))
    obj = cls.__new__(cls)
    values = dict(defaults)
    values.update(fields)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_shared: ContextVar[dict[tuple[Any, str], Any] | None] = ContextVar("fastparse_shared", default=None)


@contextmanager
def shared_elements() -> Iterator[None]:
    """Within this block, identical elements are checked and built once and then shared.

    A Bundle page repeats the same codes, categories, interpretations, reference ranges and
    subject references in every entry; sharing them halves the parse time of a page. The
    elements are immutable in use (nothing mutates a parsed resource) and live only as long
    as the block, so nothing is kept between pages, requests or users.
    """
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def exact(data: Any) -> bytes | str:
    """The exact JSON value as bytes: marshal tells 1, 1.0, "1" and True apart, as repr does, at
    a third of its cost; format 2 writes no back-references, so equal values give equal bytes
    whatever objects they happen to share."""
    try:
        return marshal.dumps(data, 2)
    except ValueError:  # not a plain JSON value (never from the decoder)
        return repr(data)


def _once(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert`, remembered per exact JSON value."""

    def convert_once(data: Any) -> Any:
        shared = _shared.get()
        if shared is None:
            return convert(data)
        key = (convert, exact(data))
        built = shared.get(key)
        if built is None:
            built = shared[key] = convert(data)
        return built

    return convert_once


class _Decline(Exception):
    """The entry is not of a shape this fast path handles: validate it in full."""


def _string(value: Any) -> str:
    if type(value) is not str or not _STRING.fullmatch(value):
        raise _Decline
    return value


def _code(value: Any) -> str:
    if type(value) is not str or not _CODE.fullmatch(value):
        raise _Decline
    return value


def _uri(value: Any) -> str:
    if type(value) is not str or not value or not _URI.fullmatch(value):
        raise _Decline
    return value


def _id(value: Any) -> str:
    if type(value) is not str or not _ID.fullmatch(value):
        raise _Decline
    return value


def _datetime(value: Any, instant: bool = False) -> datetime:
    pattern = Instant.pattern if instant else DateTime.pattern
    if type(value) is not str or not _FULL_DT.fullmatch(value) or not pattern.fullmatch(value):
        raise _Decline
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:  # e.g. 31 February: let the model produce its own error
        raise _Decline from exc


def _decimal(value: Any) -> decimal.Decimal:
    if type(value) not in (int, float) or not FhirDecimal.pattern.fullmatch(str(value)):
        raise _Decline
    return decimal.Decimal(str(value) if type(value) is float else value)


def _fields(data: Any, allowed: dict[str, Any]) -> dict[str, Any]:
    """Convert each key with its converter; unknown keys, nulls and empties decline."""
    if type(data) is not dict or not data:
        raise _Decline
    out = {}
    for key, value in data.items():
        convert = allowed.get(key)
        if convert is None or value is None:
            raise _Decline
        out[key] = convert(value)
    return out


def _list(convert):
    def many(value: Any) -> list[Any]:
        if type(value) is not list or not value:
            raise _Decline
        return [convert(v) for v in value]

    return many


def _coding(data: Any) -> Coding:
    return _construct(Coding, _fields(data, {"system": _uri, "code": _code, "display": _string}))


@_once
def _concept(data: Any) -> CodeableConcept:
    return _construct(CodeableConcept, _fields(data, {"coding": _list(_coding), "text": _string}))


@_once
def _reference(data: Any) -> Reference:
    return _construct(Reference, _fields(data, {"reference": _string, "display": _string}))


@_once
def _meta(data: Any) -> Meta:
    fields = _fields(
        data,
        {
            "versionId": _id,
            "lastUpdated": lambda v: _datetime(v, instant=True),
            "source": _uri,
            "profile": _list(_uri),
            "security": _list(_coding),
            "tag": _list(_coding),
        },
    )
    return _construct(Meta, fields)


_SIMPLE_QUANTITY = {"value": _decimal, "unit": _string, "system": _uri, "code": _code}


@_once
def _quantity(data: Any) -> Quantity:
    fields = _fields(data, {**_SIMPLE_QUANTITY, "comparator": _code})
    if "comparator" in fields and fields["comparator"] not in _COMPARATORS:
        raise _Decline
    return _construct(Quantity, fields)


@_once
def _simple_quantity(data: Any) -> Quantity:
    return _construct(Quantity, _fields(data, _SIMPLE_QUANTITY))


@_once
def _range(data: Any) -> ObservationReferenceRange:
    fields = _fields(data, {"low": _simple_quantity, "high": _simple_quantity, "text": _string})
    return _construct(ObservationReferenceRange, fields)


_VALUES = {"valueQuantity": _quantity, "valueCodeableConcept": _concept, "valueString": _string}
_COMMON = {
    **_VALUES,
    "code": _concept,
    "interpretation": _list(_concept),
    "referenceRange": _list(_range),
    "dataAbsentReason": _concept,
}


def _one_value(fields: dict[str, Any]) -> None:
    if sum(1 for key in _VALUES if key in fields) > 1:
        raise _Decline  # value[x] is a choice: the model reports the conflict


def _component(data: Any) -> ObservationComponent:
    fields = _fields(data, _COMMON)
    if "code" not in fields:
        raise _Decline
    _one_value(fields)
    return _construct(ObservationComponent, fields)


_OBSERVATION = {
    **_COMMON,
    "resourceType": lambda v: v,
    "id": _id,
    "meta": _meta,
    "status": _code,
    "category": _list(_concept),
    "subject": _reference,
    "encounter": _reference,
    "effectiveDateTime": _datetime,
    "issued": lambda v: _datetime(v, instant=True),
    "component": _list(_component),
    "hasMember": _list(_reference),
}
_STATUSES = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}


def observation(data: Any) -> Observation | None:
    """The Observation built without full validation, or None when `data` needs the full model."""
    try:
        fields = _fields(data, _OBSERVATION)
        if fields.get("resourceType") != "Observation" or fields.get("status") not in _STATUSES:
            return None
        if "code" not in fields:
            return None
        _one_value(fields)
        fields.pop("resourceType")
        return _construct(Observation, fields)
    except _Decline:
        return None


# --- DiagnosticReport (the labs panel's groups) ------------------------------------------------

_REPORT = {
    "resourceType": lambda v: v,
    "id": _id,
    "meta": _meta,
    "status": _code,
    "category": _list(_concept),
    "code": _concept,
    "subject": _reference,
    "encounter": _reference,
    "effectiveDateTime": _datetime,
    "issued": lambda v: _datetime(v, instant=True),
    "performer": _list(_reference),
    "resultsInterpreter": _list(_reference),
    "specimen": _list(_reference),
    "basedOn": _list(_reference),
    "result": _list(_reference),
    "conclusion": _string,
}
_REPORT_STATUSES = {
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
}


def diagnostic_report(data: Any) -> DiagnosticReport | None:
    """The DiagnosticReport built without full validation (a lab page holds a report per draw:
    ~0.35 ms each validated in full), or None when `data` needs the full model (a presentedForm,
    a period, an extension, a partial date...)."""
    try:
        fields = _fields(data, _REPORT)
        if fields.get("resourceType") != "DiagnosticReport" or fields.get("status") not in _REPORT_STATUSES:
            return None
        if "code" not in fields:
            return None
        fields.pop("resourceType")
        return _construct(DiagnosticReport, fields)
    except _Decline:
        return None
