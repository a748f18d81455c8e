"""Parsed resources remembered by their exact content, so a reload does not parse them again.

The key is the server's base URL, the type and the decoded JSON itself as exact bytes
(`fastparse.exact`: 1, 1.0, "1" and true differ, as they do to the parser), which costs a tenth
of parsing the entry. A hit is the very resource the parser would build: nothing depends on the
server changing `meta.versionId` on every update, as not every EHR sends one.

Only resources the strict fast path accepted whole are kept: nothing repaired, nothing
dropped, no warning to repeat. Parsed resources are never mutated, so one object serves
every request. The cache holds clinical data in process memory: it is bounded in count
(FHIR_PARSED_CACHE_SIZE, 0 turns it off) and in time (FHIR_PARSED_CACHE_SECONDS), and a
resource only ever leaves it for a request whose own EHR response held that exact content.
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import TTLCache
from django.conf import settings

from clinical import fastparse
from clinical.fhir.parsing import FAST_PATHS, fast_parse, validate_resource

_lock = threading.Lock()
_cache: TTLCache | None = None


def store() -> TTLCache | None:
    """The process's cache, or None when FHIR_PARSED_CACHE_SIZE turns it off."""
    global _cache
    size = settings.FHIR_PARSED_CACHE_SIZE
    if size <= 0:
        return None
    with _lock:
        if _cache is None or _cache.maxsize != size or _cache.ttl != settings.FHIR_PARSED_CACHE_SECONDS:
            _cache = TTLCache(maxsize=size, ttl=settings.FHIR_PARSED_CACHE_SECONDS)
        return _cache


def content_key(data: Any) -> bytes | str | None:
    """The exact content of decoded JSON, or None for anything but a JSON object."""
    return fastparse.exact(data) if type(data) is dict else None


def parse(data: Any, resource_type: str, base_url: str, cache: TTLCache | None) -> Any:
    """`parse_resource`, from `cache` when this server sent this exact content before (ValueError
    when the entry is unreadable). Only what the fast path built is kept."""
    content = content_key(data) if cache is not None and resource_type in FAST_PATHS else None
    key = (base_url, resource_type, content) if content is not None else None
    if key is not None:
        with _lock:
            hit = cache.get(key)
        if hit is not None:
            return hit
    resource = fast_parse(data, resource_type)
    if resource is None:
        return validate_resource(data, resource_type)  # repaired or refused: never kept
    if key is not None:
        with _lock:
            cache[key] = resource
    return resource


def clear() -> None:
    """Forget every parsed resource (tests; an operator may call it from a shell)."""
    with _lock:
        if _cache is not None:
            _cache.clear()
