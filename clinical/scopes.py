"""Does a granted SMART scope set allow a read or search? (v1 `.read` and v2 `.rs`, granular.)

Reference: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

_SCOPE_RE = re.compile(
    r"^(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>\*|read|write|c?r?u?d?s?)"
    r"(?:\?(?P<query>.+))?$"
)


@dataclass(frozen=True)
class Grant:
    """What the scopes allow for one query: allowed or not, and granular search restrictions."""

    allowed: bool
    restrictions: tuple[tuple[str, str], ...] = ()  # (param, value) the search must carry


def _perms(perm: str) -> set[str]:
    if perm in ("*", "write"):
        return set("cruds") if perm == "*" else set("cud")
    if perm == "read":
        return {"r", "s"}
    return set(perm)


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
        match = _SCOPE_RE.match(scope)
        if not match or match["level"] not in levels:
            continue
        if match["type"] not in ("*", resource_type) or need not in _perms(match["perm"]):
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
