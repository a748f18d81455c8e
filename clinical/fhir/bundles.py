"""Reading a searchset Bundle page: entries past the cap are never built, let alone parsed.

A page of a capped search can be far bigger than the cap (20,000 entries for a 50-entry cap);
reading it as ijson events keeps memory and time per page bounded by the cap, not by the server.
A page of ordinary size (up to SMALL_PAGE bytes) is read whole and decoded by the C JSON parser
instead, about five times faster than building its entries from events in Python; anything it
cannot decode is read as events, so both ways give the same page.
Reference: https://hl7.org/fhir/R4/bundle.html, https://hl7.org/fhir/R4/search.html#paging
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ijson

from clinical.fhir.errors import InvalidResponse, outcome_diagnostics
from smartapp import transport

MAX_LINKS = 100  # Bundle.link entries looked at (a page has a handful)
SMALL_PAGE = 2 * 1024 * 1024  # bytes: a page this size or less is decoded whole (a few MB in memory)


@dataclass
class Page:
    """What one streamed search page yields: its matches up to the cap, unparsed, and its links."""

    resource_type: Any = None
    total: Any = None
    links: list[Any] = field(default_factory=list)
    matches: list[Any] = field(default_factory=list)  # entries that count towards the cap
    warnings: list[str] = field(default_factory=list)
    more: bool = False  # entries past the cap were left unread


_Events = Iterator[tuple[str, Any]]


_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def _value(events: _Events, event: str, value: Any) -> Any:
    """Build the JSON value that starts with (event, value) from the event stream.

    A tight loop rather than ijson.ObjectBuilder: it runs once per JSON token of every entry
    within the cap, and is about three times faster.
    """
    if event == "start_map":
        root: Any = {}
    elif event == "start_array":
        root = []
    else:
        return value
    stack: list[Any] = [root]
    keys: list[Any] = []
    container, key = root, None
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event in _CLOSE:
            stack.pop()
            if not stack:
                return root
            container, key = stack[-1], keys.pop()
            continue
        item = {} if event == "start_map" else [] if event == "start_array" else value
        if type(container) is dict:
            container[key] = item
        else:
            container.append(item)
        if event in _OPEN:
            stack.append(item)
            keys.append(key)
            container = item
    raise StopIteration  # the document ended inside the value: truncated


def _skip(events: _Events, event: str) -> None:
    """Pass over the JSON value that starts with `event`, building nothing."""
    depth = event in _OPEN
    while depth:
        event = next(events)[0]
        depth += event in _OPEN
        depth -= event in _CLOSE


def _read_links(events: _Events, event: str, value: Any) -> list[Any]:
    if event != "start_array":
        _skip(events, event)
        return []
    links: list[Any] = []
    while True:
        event, value = next(events)
        if event == "end_array":
            return links
        if len(links) < MAX_LINKS:
            links.append(_value(events, event, value))
        else:
            _skip(events, event)


def _sort_entry(entry: Any, resource_type: str, page: Page) -> None:
    """An OperationOutcome becomes a warning, an _include'd or other resource is passed over, the
    rest is a match to parse (valid or not, it counts towards the cap)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    search = entry.get("search") if isinstance(entry, dict) else None
    mode = search.get("mode") if isinstance(search, dict) else None
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if rtype == "OperationOutcome" or mode == "outcome":
        text = outcome_diagnostics(resource)
        if text:
            page.warnings.append(text)
        return
    if mode == "include" or (rtype is not None and rtype != resource_type):
        return  # _include'd or unrelated resources are not matches
    page.matches.append(resource)


def read_page(stream: Any, resource_type: str, cap: int) -> Page:
    """One searchset Bundle page: entries up to `cap` matches are built, the rest never parsed.

    Once `cap` matches are in and another entry follows, reading stops (`more`): the search is
    capped, so neither those entries nor anything after them is needed. Memory and time per page
    then depend on the cap, not on what the server sends. Raises ValueError for anything but a
    JSON object, InvalidResponse for a resource other than a Bundle.
    """
    head = _read_up_to(stream, SMALL_PAGE)
    if len(head) <= SMALL_PAGE:  # the whole body
        try:
            document = json.loads(head, parse_constant=_not_json)
        except (ValueError, RecursionError):
            document = None  # read as events below: the same error, or the entries before it
        if isinstance(document, dict):
            return _page_of(document, resource_type, cap)
    return _stream_page(_Prefixed(head, stream), resource_type, cap)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # NaN and Infinity: Python's json accepts them


def _read_up_to(stream: Any, limit: int) -> bytes:
    """The body's first `limit` + 1 bytes or fewer (fewer: that is the whole body)."""
    chunks, size = [], 0
    while size <= limit and (chunk := stream.read(transport.READ_CHUNK)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class _Prefixed:
    """The bytes already read, then the rest of the stream, as one file for ijson."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head, self._stream = memoryview(head), stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            part, self._head = self._head[:size], self._head[size:]
            return bytes(part)
        return self._stream.read(size)


def _page_of(document: dict, resource_type: str, cap: int) -> Page:
    """The page of a decoded Bundle, as the event reader would give it."""
    page = Page()
    for key, attr in (("resourceType", "resource_type"), ("total", "total")):
        value = document.get(key)
        if value is not None and not isinstance(value, dict | list):
            setattr(page, attr, value)
    links = document.get("link")
    page.links = links[:MAX_LINKS] if isinstance(links, list) else []
    entries = document.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        if len(page.matches) >= cap:
            page.more = True
            return _checked(page)
        _sort_entry(entry, resource_type, page)
    if page.resource_type is None:
        raise InvalidResponse("the search result is not a Bundle")
    return _checked(page)


def _stream_page(stream: Any, resource_type: str, cap: int) -> Page:
    page = Page()
    events: _Events = iter(ijson.basic_parse(stream, use_float=True, buf_size=transport.READ_CHUNK))
    try:
        event, value = next(events)
        if event != "start_map":
            raise ValueError("not a JSON object")
        while True:
            event, key = next(events)
            if event == "end_map":
                break
            event, value = next(events)
            if key == "entry" and event == "start_array":
                while True:
                    event, value = next(events)
                    if event == "end_array":
                        break
                    if len(page.matches) >= cap:
                        page.more = True
                        return _checked(page)
                    _sort_entry(_value(events, event, value), resource_type, page)
            elif key == "link":
                page.links = _read_links(events, event, value)
            elif key in ("resourceType", "total") and event not in ("start_map", "start_array"):
                setattr(page, "resource_type" if key == "resourceType" else "total", value)
            else:
                _skip(events, event)
    except (ijson.JSONError, StopIteration, RecursionError) as exc:
        raise ValueError("not JSON") from exc
    if page.resource_type is None:
        raise InvalidResponse("the search result is not a Bundle")
    return _checked(page)


def _checked(page: Page) -> Page:
    # resourceType may follow the entries (JSON objects are unordered): a page cut at the cap
    # before it is taken for the Bundle its entries show it to be.
    if page.resource_type is not None and page.resource_type != "Bundle":
        raise InvalidResponse("the search result is not a Bundle")
    return page
