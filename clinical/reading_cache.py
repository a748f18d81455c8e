"""Readings remembered per parsed Observation, for as long as that Observation object lives.

A reload gets the very same Observation objects back from `clinical.fhir.memo` (same content),
so what was derived from one (its displayed value, flag, range and warning) can be reused
instead of derived again: building readings was the largest cost of a reload after parsing.

A reading depends on the Observation and on a context the caller names (the kind of reading,
the encounter in context, the patient's birth date and sex); nothing in it depends on the time
of the request (ages and staleness are the measure's, computed every time). Entries are keyed
by the object's identity, checked through a weak reference whose callback drops the entry when
the Observation goes: a reading never outlives its Observation's stay in memory, and an id
reused by a new object never finds an old reading.
The clinical display settings are part of every reading: a change to them (tests) clears it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, TypeVar

from django.core.signals import setting_changed

T = TypeVar("T")

MAX_OBJECTS = 20_000  # a safety bound: live entries are about the memo's size plus one page
_PER_OBJECT = 4  # contexts per Observation (a patient seen in two encounters, say)

_lock = threading.Lock()
_entries: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}


def remembered(obs: Any, context: Hashable, build: Callable[..., T], *args: Any) -> T:
    """`build(obs, *args)`, or what it gave before for this very `obs` object in this `context`
    (which must name everything in `args` the result depends on)."""
    key = id(obs)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry[0]() is obs and context in entry[1]:
            return entry[1][context]
    value = build(obs, *args)
    try:
        ref = weakref.ref(obs, partial(_forget, key))
    except TypeError:  # not weak-referenceable: nothing to tie the reading's lifetime to
        return value
    with _lock:
        entry = _entries.get(key)
        if entry is None or entry[0]() is not obs:
            if len(_entries) >= MAX_OBJECTS:
                _entries.clear()
            entry = _entries[key] = (ref, {})
        if len(entry[1]) < _PER_OBJECT:
            entry[1][context] = value
    return value


def _forget(key: int, ref: weakref.ref) -> None:
    """The Observation is gone: drop its readings. No lock (a collection may run while this
    thread holds it); at worst a racing insert for a new object at that address is lost."""
    entry = _entries.get(key)
    if entry is not None and entry[0] is ref:
        _entries.pop(key, None)


def clear() -> None:
    with _lock:
        _entries.clear()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CLINICAL_") or setting == "TIME_ZONE":
        clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="clinical.reading_cache")
