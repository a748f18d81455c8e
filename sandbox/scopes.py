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
