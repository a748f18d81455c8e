"""The problem list from Condition: active before inactive, disorders before findings, one row
per condition however many categories list it."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from clinical.panels import Problem
from clinical.readings import When, codes_of, concept_full, concept_text, format_decimal

_ACTIVE = {"active", "recurrence", "relapse"}
# Reference: https://terminology.hl7.org/CodeSystem-condition-category.html (and US Core's)
_CATEGORIES = {
    "problem-list-item": "Problem list",
    "encounter-diagnosis": "Encounter diagnosis",
    "health-concern": "Health concern",
}
_AGE_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours"}


def _category_name(concept: Any) -> str:
    for code in codes_of(concept):
        if code in _CATEGORIES:
            return _CATEGORIES[code]
    return concept_text(concept)


def _age_unit(age: Any) -> str:
    code = (age.code or "").strip()
    return _AGE_UNITS.get(code, (age.unit or code).strip())


def build_problems(conditions: tuple[Any, ...]) -> tuple[tuple[Problem, ...], tuple[Problem, ...], int]:
    active, inactive, in_error = [], [], 0
    for cond in conditions:
        verification = next(iter(codes_of(cond.verificationStatus)), "")
        if verification == "entered-in-error":
            in_error += 1
            continue
        clinical = next(iter(codes_of(cond.clinicalStatus)), "")
        onset_when = When.parse(cond.onsetDateTime) or (
            When.parse(cond.onsetPeriod.start) if cond.onsetPeriod else None
        )
        onset = ""
        if onset_when is None:
            if cond.onsetAge is not None and cond.onsetAge.value is not None:
                onset = f"age {format_decimal(cond.onsetAge.value)} {_age_unit(cond.onsetAge)}".strip()
            elif cond.onsetString:
                onset = cond.onsetString
        abatement_when = When.parse(cond.abatementDateTime) or (
            When.parse(cond.abatementPeriod.start) if cond.abatementPeriod else None
        )
        abatement = cond.abatementString or ""
        short, full = concept_full(cond.code)
        problem = Problem(
            name=_HCC.sub("", short) or "Unnamed condition",
            full_name=full,
            key=_problem_key(cond.code, short),
            minor=_is_minor(cond.code),
            clinical_status=clinical or "not recorded",
            verification=verification or "not recorded",
            category=", ".join(t for t in (_category_name(c) for c in cond.category or []) if t),
            onset=onset,
            onset_when=onset_when,
            recorded=When.parse(cond.recordedDate),
            abatement=abatement,
            abatement_when=abatement_when,
        )
        # refuted means "not present": never list it among the active problems.
        if (clinical in _ACTIVE or not clinical) and verification != "refuted":
            active.append(problem)
        else:
            inactive.append(problem)

    def order(p: Problem) -> tuple[bool, float, str]:
        """Disorders first, then findings and situations (social, administrative); newest first."""
        when = p.onset_when or p.recorded
        return (p.minor, -(when.sort_key.timestamp()) if when else 0.0, p.name.lower())

    return tuple(sorted(_merged(active), key=order)), tuple(sorted(inactive, key=order)), in_error


# Epic appends the billing category to problem names; it means nothing at the bedside.
_HCC = re.compile(r"\s*\(HCC\)\s*$")
# SNOMED CT hierarchies that are not diseases: listed after the disorders.
_MINOR_TAGS = ("(finding)", "(situation)", "(observable entity)", "(event)", "(social concept)")


def _is_minor(code: Any) -> bool:
    codings = getattr(code, "coding", None) or []
    texts = [getattr(code, "text", None) or "", *(c.display or "" for c in codings)]
    return any(t.strip().endswith(_MINOR_TAGS) for t in texts)


def _problem_key(code: Any, name: str) -> str:
    for coding in getattr(code, "coding", None) or []:
        if coding.code:
            return f"{coding.system or ''}|{coding.code}"
    return "text:" + name.strip().lower()


def _merged(problems: list[Problem]) -> list[Problem]:
    """One row per condition: the same code on the problem list and as an encounter diagnosis
    is one problem with both categories and the earliest onset."""
    by_key: dict[str, Problem] = {}
    for p in problems:
        kept = by_key.get(p.key)
        if kept is None:
            by_key[p.key] = p
            continue
        categories = ", ".join(dict.fromkeys([*kept.categories, *p.categories]))
        earliest = min((x for x in (kept, p) if x.onset_when), key=lambda x: x.onset_when, default=kept)
        by_key[p.key] = replace(earliest, category=categories)
    return list(by_key.values())
