"""SMART scope parsing, matching and enforcement (v1 `.read/.write/.*` and v2 `.cruds`).

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

_CLINICAL = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(?:\?(.+))?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_V2_ORDER = "cruds"

NON_CLINICAL = {
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
}


@dataclass(frozen=True)
class ClinicalScope:
    context: str  # patient | user | system
    rtype: str  # resource type or *
    perms: frozenset[str]
    query: tuple[tuple[str, str], ...] = field(default=())

    def covers(self, other: ClinicalScope) -> bool:
        """True when this (registered) scope allows everything `other` asks for."""
        return (
            self.context == other.context
            and self.rtype in ("*", other.rtype)
            and other.perms <= self.perms
            and (not self.query or self.query == other.query)
        )


def parse_clinical(scope: str) -> ClinicalScope | None:
    """A clinical scope, or None when `scope` is not one (or is malformed)."""
    m = _CLINICAL.match(scope)
    if not m:
        return None
    context, rtype, perms, query = m.groups()
    if perms in _V1:
        letters = _V1[perms]
    else:
        # v2: an ordered, non-empty subset of c r u d s
        it = iter(_V2_ORDER)
        if not perms or not all(ch in it for ch in perms):
            return None
        letters = perms
    return ClinicalScope(context, rtype, frozenset(letters), tuple(parse_qsl(query or "")))


def is_known(scope: str) -> bool:
    return scope in NON_CLINICAL or parse_clinical(scope) is not None


def allowed_by_client(scope: str, registered: list[str]) -> bool:
    """Whether a client registered for `registered` scopes (empty = anything) may get `scope`."""
    if not registered:
        return is_known(scope)
    if scope in registered:
        return True
    wanted = parse_clinical(scope)
    if wanted is None:
        return False
    return any((reg := parse_clinical(r)) is not None and reg.covers(wanted) for r in registered)


@dataclass
class Access:
    """What a token may read: resource types and, for patient/ scopes, one patient's compartment."""

    scopes: list[ClinicalScope]

    @classmethod
    def from_scope_string(cls, scope: str) -> Access:
        return cls([s for s in (parse_clinical(x) for x in scope.split()) if s is not None])

    def grants(self, rtype: str, perm: str) -> list[ClinicalScope]:
        """The scopes that allow `perm` (r or s) on `rtype`."""
        return [s for s in self.scopes if s.rtype in ("*", rtype) and perm in s.perms]


# --- What a scope means, for the consent page ----------------------------------------------------
_IDENTITY = "Who you are"
_CONTEXT = "What the app opens with"
_DURATION = "How long the app keeps access"
_DESCRIPTIONS = {
    "openid": (_IDENTITY, "Confirm to the app who you are (OpenID Connect sign-in)"),
    "fhirUser": (_IDENTITY, "Tell the app which user record is yours (your Practitioner or Patient record)"),
    "profile": (_IDENTITY, "Share your basic profile, such as your name"),
    "launch": (_CONTEXT, "Open with the patient and encounter you have open in the EHR"),
    "launch/patient": (_CONTEXT, "Open with a patient chosen when the app starts"),
    "launch/encounter": (_CONTEXT, "Open with an encounter chosen when the app starts"),
    "offline_access": (_DURATION, "Keep access after you sign out or close the browser, until you revoke it"),
    "online_access": (_DURATION, "Keep access only while you stay signed in to the EHR"),
}
# Resource types as a clinician names them: (group heading, noun in a sentence).
_RESOURCES = {
    "*": ("All clinical data", "clinical data of every kind"),
    "Patient": ("Demographics (Patient)", "demographics"),
    "Observation": ("Vital signs, lab results and other observations (Observation)", "observations"),
    "Condition": ("Problems and diagnoses (Condition)", "problems and diagnoses"),
    "Encounter": ("Visits and admissions (Encounter)", "visits and admissions"),
    "DiagnosticReport": ("Lab and other reports (DiagnosticReport)", "lab and other reports"),
    "Practitioner": ("Clinicians (Practitioner)", "clinicians' details"),
}
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_WHOSE = {
    "patient": "{action} this patient's {noun}",
    "user": "{action} {noun} of any patient you may see in the EHR",
    "system": "{action} {noun} of any patient, with no user signed in",
}
# Granular-scope categories (SMART 2: `?category=`), named as in the FHIR category code systems.
_CATEGORIES = {
    "problem-list-item": "problem-list entries",
    "encounter-diagnosis": "encounter diagnoses",
    "health-concern": "health concerns",
    "vital-signs": "vital signs",
    "laboratory": "laboratory results",
    "social-history": "social history",
    "survey": "questionnaire answers",
    "imaging": "imaging results",
    "LAB": "laboratory reports",  # DiagnosticReport (v2-0074)
}

OTHER_GROUP = "Other permissions"


def describe(scope: str) -> tuple[str, str]:
    """(group, sentence) for a scope: grouped by resource, in words a patient or clinician reads."""
    if scope in _DESCRIPTIONS:
        return _DESCRIPTIONS[scope]
    parsed = parse_clinical(scope)
    if parsed is None:
        return OTHER_GROUP, "A permission this sandbox does not describe"
    verbs = [_VERBS[letter] for letter in _V2_ORDER if letter in parsed.perms]
    action = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " and " + verbs[-1]
    group, noun = _RESOURCES.get(parsed.rtype, (parsed.rtype, f"{parsed.rtype} records"))
    sentence = _WHOSE[parsed.context].format(action=action, noun=noun)
    sentence = sentence[0].upper() + sentence[1:]
    limits = []
    for key, value in parsed.query:
        code = value.rpartition("|")[2]
        if key == "category":
            limits.append(_CATEGORIES.get(code, f"category \u201c{code}\u201d"))
        else:
            limits.append(f"{key} \u201c{code}\u201d")
    if limits:
        sentence += ", only " + " and ".join(limits)
    return group, sentence


def describe_all(scopes: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Scopes grouped for display: [(group, [(scope, sentence), ...]), ...], in a stable order."""
    order = [_IDENTITY, _CONTEXT, *(heading for heading, _ in _RESOURCES.values()), _DURATION]
    groups: dict[str, list[tuple[str, str]]] = {}
    for scope in scopes:
        group, sentence = describe(scope)
        groups.setdefault(group, []).append((scope, sentence))

    def rank(group: str) -> tuple[float, str]:
        if group in order:
            return order.index(group), ""
        # Other resource types after the known ones, before the duration; unknown scopes last.
        return (len(order) if group == OTHER_GROUP else order.index(_DURATION) - 0.5), group

    return sorted(groups.items(), key=lambda item: rank(item[0]))
