"""The one SMART scope grammar (v1 `.read`/`.write`, v2 `.cruds`, granular `?param=value`).

Used on both sides: the launch (which scopes to ask for, which were granted, v1 for v1-only
EHRs) and the dashboard (does the grant allow this read or search, and how a granular scope
narrows it). Plain functions over strings; no Django, no other project module.

Reference: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# A resource scope: level/type.permissions[?query], v1 or v2 permissions.
RESOURCE_SCOPE = re.compile(
    r"^(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>\*|read|write|c?r?u?d?s?)"
    r"(?:\?(?P<query>.+))?$"
)
LEVELS = ("patient", "user", "system")
# v1 permissions in v2 letters.
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
IDENTITY_SCOPES = ("openid", "fhirUser")


def is_scope_token(value: str) -> bool:
    """Whether `value` is one well-formed RFC 6749 scope token."""
    return SCOPE_TOKEN.fullmatch(value) is not None


def permissions(perm: str) -> set[str]:
    """The v2 letters a v1 or v2 permission string stands for (`read` → {r, s})."""
    return set(V1_PERMISSIONS.get(perm, perm))


def v2_form(scope: str) -> str:
    """`patient/X.read` → `patient/X.rs` (and .write, .*); other scopes unchanged."""
    head, dot, perm = scope.rpartition(".")
    if dot and "/" in head and perm in V1_PERMISSIONS:
        return f"{head}.{V1_PERMISSIONS[perm]}"
    return scope


def v1_form(scope: str) -> str:
    """One v2 resource scope in v1 form (`.rs` → `.read`); other scopes unchanged."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
    prefix, _, rest = scope.partition("/")
    if prefix not in LEVELS or "." not in rest:
        return scope
    resource, _, perm = rest.partition(".")
    perm = perm.split("?", 1)[0]  # v1 has no granular (query) scopes
    if perm in V1_PERMISSIONS or not perm or set(perm) - set("cruds"):
        return f"{prefix}/{resource}.{perm}"
    reads, writes = set(perm) & set("rs"), set(perm) & set("cud")
    if reads and writes:
        return f"{prefix}/{resource}.*"
    return f"{prefix}/{resource}.{'read' if reads else 'write'}"


def as_v1(scope: str) -> str:
    """A scope string with every resource scope in v1 form, duplicates dropped, order kept."""
    converted: list[str] = []
    for scope_token in scope.split():
        v1 = v1_form(scope_token)
        if v1 not in converted:
            converted.append(v1)
    return " ".join(converted)


def needs_patient(scope: str) -> bool:
    """Patient-level scopes mean nothing without a patient in context."""
    return any(s == "launch/patient" or s.startswith("patient/") for s in scope.split())


# --- What a grant allows (the dashboard's queries) ---------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What the scopes allow for one query: allowed or not, and granular search restrictions."""

    allowed: bool
    restrictions: tuple[tuple[str, str], ...] = ()  # (param, value) the search must carry


def check(
    granted: Collection[str] | None,
    resource_type: str,
    interaction: str,
    *,
    levels: tuple[str, ...] = ("patient", "user"),
    params: dict[str, str] | None = None,
) -> Grant:
    """Whether `granted` permits `interaction` ("read"/"search") on `resource_type`.

    `granted=None` means the EHR did not say which scopes it granted: try, and let a 403 decide.
    A granular scope (`patient/Condition.rs?category=...|problem-list-item`) allows a search
    whose `params` do not contradict it: a value we send must match, a parameter we do not send
    narrows the search. The returned restrictions are sent with the query.
    """
    if granted is None:
        return Grant(True)
    need = "r" if interaction == "read" else "s"
    restricted: list[tuple[str, str]] = []
    for scope in granted:
        match = RESOURCE_SCOPE.match(scope)
        if not match or match["level"] not in levels:
            continue
        if match["type"] not in ("*", resource_type) or need not in permissions(match["perm"]):
            continue
        if not match["query"]:
            return Grant(True)
        # Granular: no param=value of the scope may contradict what we are about to ask for.
        pairs = [tuple(p.split("=", 1)) for p in match["query"].split("&") if "=" in p]
        compatible = all(_compatible(params or {}, k, v) for k, v in pairs)
        if interaction == "search" and pairs and not restricted and compatible:
            restricted = [(k, v) for k, v in pairs]
        # keep looking: an unrestricted grant elsewhere would be better
    if restricted:
        return Grant(True, tuple(restricted))
    return Grant(False)


def _compatible(params: dict[str, str], key: str, value: str) -> bool:
    ours = params.get(key)
    if ours is None:
        return True  # the restriction is added to the search, narrowing it
    # Token search values may carry a system: `system|code` matches our bare `code` and vice versa.
    return ours == value or value.rsplit("|", 1)[-1] == ours.rsplit("|", 1)[-1]


def describe(resource_type: str, levels: tuple[str, ...] = ("patient", "user")) -> str:
    """The scope a user would need, for the "not authorized" message."""
    return f"{levels[0]}/{resource_type}.rs"
