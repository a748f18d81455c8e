"""The one FHIR client: pooled sessions, bearer token, bounded paging, tolerant R4B parsing.

It knows nothing about Django sessions or launches: it gets a base URL, a token and an
`on_unauthorized` callback that returns a fresh token (or None). Every request it makes is to
the FHIR base it was built for; the token never goes anywhere else.

Reference: https://hl7.org/fhir/R4/http.html (RESTful API), https://hl7.org/fhir/R4/search.html#paging
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import ijson
import requests
from django.conf import settings
from pydantic import ValidationError

from clinical import fastparse
from smartapp import safety, transport

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

# Audit outcomes: the values of smartapp.models.AuditEvent.Outcome (kept as strings so this
# module stays free of the ORM).
OUTCOME_OK = "ok"
OUTCOME_DENIED = "denied"
OUTCOME_NOT_FOUND = "not_found"
OUTCOME_ERROR = "error"
OUTCOME_TIMEOUT = "timeout"

# FHIR ids: the one pattern (smartapp.safety), [A-Za-z0-9-.]{1,256} (Epic's run past 64).
ID_PATTERN = safety.FHIR_ID
_RESOURCE_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_OPERATION_RE = re.compile(r"^[a-z][A-Za-z-]{0,63}$")
_DIAGNOSTICS_MAX = 300
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


# --- Errors ---------------------------------------------------------------------------------


class FhirError(Exception):
    """A FHIR request failed; `diagnostics` is the server's OperationOutcome text (sanitised)."""

    outcome = OUTCOME_ERROR
    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None, diagnostics: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        return f"{self.message}: {self.diagnostics}" if self.diagnostics else self.message


class Unauthorized(FhirError):
    outcome = OUTCOME_DENIED


class Forbidden(FhirError):
    outcome = OUTCOME_DENIED


class NotFound(FhirError):
    outcome = OUTCOME_NOT_FOUND


class Gone(NotFound):
    pass


class BadRequest(FhirError):
    """4xx other than the above: the server refused the query itself."""


class RateLimited(FhirError):
    retryable = True

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(FhirError):
    retryable = True


class Unreachable(ServerError):
    """No HTTP response at all (DNS, connection refused, TLS)."""


class Timeout(FhirError):
    outcome = OUTCOME_TIMEOUT
    retryable = True


class InvalidResponse(FhirError):
    """The server answered, but not with the FHIR JSON we asked for."""

    retryable = True


class RefusedURL(FhirError):
    """The FHIR base breaks the outbound URL rule (smartapp.safety): nothing was sent."""


def sanitize_text(text: Any, limit: int = _DIAGNOSTICS_MAX) -> str:
    """Server text made safe to show and log: a string, no control characters, length-capped."""
    if not isinstance(text, str):
        return ""
    text = _CONTROL_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_diagnostics(body: Any) -> str:
    """The human-readable text of an OperationOutcome (diagnostics or details.text of its issues)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts: list[str] = []
    issues = body.get("issue")
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
        if isinstance(text, str) and text.strip():
            parts.append(text)
    return sanitize_text("; ".join(parts))


# --- Tolerant parsing -----------------------------------------------------------------------

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


def parse_resource(data: Any, resource_type: str) -> Any:
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
    if resource_type == "Observation":
        fast = fastparse.observation(data)  # same result as below for the shapes it accepts, ~10x faster
        if fast is not None:
            return fast
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


# --- Pooled HTTP sessions -------------------------------------------------------------------


def _port(parts: Any) -> int:
    try:
        port = parts.port
    except ValueError:
        return -1
    if port is not None:
        return port
    return 443 if parts.scheme.lower() == "https" else 80


def session_for(base_url: str) -> requests.Session:
    """The transport's keep-alive pool for this EHR origin (no cookies, no redirects)."""
    return transport.session_for(base_url)


# --- Results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One query as the audit trail sees it (no clinical values)."""

    resource_type: str
    interaction: str
    outcome: str
    count: int | None = None
    status_code: int | None = None


MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # one FHIR response; pages are capped far below this
MAX_ERROR_BYTES = 1024 * 1024  # an error answer is read for its OperationOutcome text only
MAX_LINKS = 100  # Bundle.link entries looked at (a page has a handful)


@dataclass(frozen=True)
class SearchResult:
    """Parsed matches of one search across its pages, and how complete they are."""

    resources: tuple[Any, ...]
    total: int | None = None  # Bundle.total from the first page, when the server sent it
    skipped: int = 0  # entries that could not be read
    truncated: bool = False
    truncated_reason: str = ""
    pages: int = 0
    warnings: tuple[str, ...] = ()  # OperationOutcome entries (search.mode = outcome)

    @property
    def count(self) -> int:
        return len(self.resources)


@dataclass
class _Paging:
    resources: list[Any] = field(default_factory=list)
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Page:
    """What one streamed search page yields: its matches up to the cap, unparsed, and its links."""

    resource_type: Any = None
    total: Any = None
    links: list[Any] = field(default_factory=list)
    matches: list[Any] = field(default_factory=list)  # entries that count towards the cap
    warnings: list[str] = field(default_factory=list)
    more: bool = False  # entries past the cap were left unread


# --- Streaming a Bundle ---------------------------------------------------------------------

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


def _sort_entry(entry: Any, resource_type: str, page: _Page) -> None:
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


def read_page(stream: Any, resource_type: str, cap: int) -> _Page:
    """Stream one searchset Bundle: entries up to `cap` matches are built, the rest never parsed.

    Once `cap` matches are in and another entry follows, reading stops (`more`): the search is
    capped, so neither those entries nor anything after them is needed. Memory and time per page
    then depend on the cap, not on what the server sends. Raises ValueError for anything but a
    JSON object, InvalidResponse for a resource other than a Bundle.
    """
    page = _Page()
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


def _checked(page: _Page) -> _Page:
    # resourceType may follow the entries (JSON objects are unordered): a page cut at the cap
    # before it is taken for the Bundle its entries show it to be.
    if page.resource_type is not None and page.resource_type != "Bundle":
        raise InvalidResponse("the search result is not a Bundle")
    return page


def _read_json(stream: transport.Body) -> Any:
    return json.loads(stream.read_all())


# --- Client ---------------------------------------------------------------------------------


class FhirClient:
    """Reads and searches one FHIR server with one launch's token. Safe to share across threads."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        on_unauthorized: Callable[[], str | None] | None = None,
        session: requests.Session | None = None,
        *,
        timeout: tuple[float, float] | None = None,
        page_size: int | None = None,
        max_pages: int | None = None,
        max_entries: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._base = urlsplit(self.base_url)
        if self._base.scheme not in ("http", "https") or not self._base.hostname:
            raise ValueError("FHIR base URL must be an absolute http(s) URL")
        self._token = access_token
        self._on_unauthorized = on_unauthorized
        self._refresh_lock = threading.Lock()
        self._refresh_used = False
        self.session = session or session_for(self.base_url)
        self.timeout = timeout or (settings.SMART_HTTP_CONNECT_TIMEOUT, settings.SMART_HTTP_READ_TIMEOUT)
        self.page_size = page_size or settings.FHIR_PAGE_SIZE
        self.max_pages = max_pages or settings.FHIR_PAGE_LIMIT
        self.max_entries = max_entries or settings.FHIR_MAX_ENTRIES
        self._accesses: list[Access] = []
        self._accesses_lock = threading.Lock()
        self._waits: list[tuple[float, float]] = []

    # -- public API --

    @property
    def accesses(self) -> list[Access]:
        with self._accesses_lock:
            return list(self._accesses)

    @property
    def wait_intervals(self) -> list[tuple[float, float]]:
        """perf_counter() (start, end) of every HTTP request this client made (for Server-Timing)."""
        with self._accesses_lock:
            return list(self._waits)

    def capabilities(self) -> dict:
        """GET [base]/metadata as plain JSON: what the server supports (its operations, say).

        Reference: https://hl7.org/fhir/R4/http.html#capabilities
        """
        # Not recorded among `accesses`: no patient's data, so nothing for the audit trail.
        body, status = self._get(f"{self.base_url}/metadata", _read_json)
        if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
            raise InvalidResponse("the metadata is not a CapabilityStatement", status_code=status)
        return body

    def read(self, resource_type: str, resource_id: str) -> Any:
        """GET [base]/[type]/[id] → the parsed R4B resource."""
        _check_type(resource_type)
        if not isinstance(resource_id, str) or not ID_PATTERN.match(resource_id):
            self._record(resource_type, "read", OUTCOME_ERROR, None, None)
            raise BadRequest("invalid resource id")
        url = f"{self.base_url}/{resource_type}/{quote(resource_id, safe='')}"
        try:
            body, status = self._get(url, _read_json)
            if not isinstance(body, dict):
                raise InvalidResponse("the EHR's answer was not FHIR JSON", status_code=status)
        except FhirError as exc:
            self._record(resource_type, "read", exc.outcome, None, exc.status_code)
            raise
        try:
            resource = parse_resource(body, resource_type)
        except ValueError as exc:
            self._record(resource_type, "read", OUTCOME_ERROR, None, status)
            raise InvalidResponse(f"the {resource_type} could not be read", status_code=status) from exc
        self._record(resource_type, "read", OUTCOME_OK, 1, status)
        return resource

    def search(
        self,
        resource_type: str,
        params: Mapping[str, str] | None = None,
        *,
        max_pages: int | None = None,
        max_entries: int | None = None,
        operation: str = "",
    ) -> SearchResult:
        """GET [base]/[type]?params (or a searchset operation, [base]/[type]/$op?params), following
        `next` links within the page and entry caps.

        Each page is streamed: entries past the entry cap are never parsed (`read_page`).
        Reference: https://hl7.org/fhir/R4/http.html#paging
        """
        _check_type(resource_type)
        if operation and not _OPERATION_RE.match(operation):
            raise ValueError("invalid operation name")
        max_pages = max_pages or self.max_pages
        max_entries = max_entries or self.max_entries
        query = {"_count": str(min(self.page_size, max_entries)), **dict(params or {})}
        path = f"{self.base_url}/{resource_type}" + (f"/${operation}" if operation else "")
        first = requests.Request("GET", path, params=query).prepare().url
        url: str | None = first
        seen: set[str] = set()
        acc = _Paging()
        total: int | None = None
        pages = 0
        truncated, reason = False, ""
        status: int | None = None
        try:
            while url is not None:
                seen.add(url)
                cap = max_entries - len(acc.resources) - acc.skipped

                def reader(stream: transport.Body, cap: int = cap) -> _Page:
                    return read_page(stream, resource_type, cap)

                page, status = self._get(url, reader)
                pages += 1
                if pages == 1 and isinstance(page.total, int) and page.total >= 0:
                    total = page.total
                self._collect(page, resource_type, acc)
                if page.more:
                    truncated, reason = True, "capped"
                    break
                next_url = _next_link({"link": page.links}, url)
                if next_url is None:
                    break
                if len(acc.resources) + acc.skipped >= max_entries or pages >= max_pages:
                    truncated, reason = True, "capped"
                    break
                if not self._is_own_url(next_url):
                    truncated = True
                    reason = "the next-page link pointed outside the FHIR server and was not followed"
                    break
                if next_url in seen:
                    truncated, reason = True, "the server's paging links loop; paging stopped"
                    break
                url = next_url
        except FhirError as exc:
            self._record(resource_type, "search", exc.outcome, None, exc.status_code)
            raise
        resources = acc.resources[:max_entries]
        if len(acc.resources) > max_entries:
            truncated, reason = True, reason or "capped"
        self._record(resource_type, "search", OUTCOME_OK, len(resources), status)
        return SearchResult(
            resources=tuple(resources),
            total=total,
            skipped=acc.skipped,
            truncated=truncated,
            truncated_reason=reason,
            pages=pages,
            warnings=tuple(acc.warnings),
        )

    # -- internals --

    def _record(self, rtype: str, interaction: str, outcome: str, count: int | None, status: int | None):
        with self._accesses_lock:
            self._accesses.append(Access(rtype, interaction, outcome, count, status))

    def _is_own_url(self, url: str) -> bool:
        """True only for URLs under this client's FHIR base (same scheme, host, port, path prefix)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != self._base.scheme.lower() or parts.username or parts.password:
            return False
        if (parts.hostname or "").lower() != (self._base.hostname or "").lower():
            return False
        if _port(parts) != _port(self._base):
            return False
        # Dot segments (also percent-encoded) would be resolved by the HTTP stack to a path
        # outside the base while passing a prefix check: refuse them outright.
        segments = unquote(parts.path).split("/")
        if "." in segments or ".." in segments:
            return False
        base_path = self._base.path.rstrip("/")
        return parts.path == base_path or parts.path.startswith(base_path + "/")

    def _collect(self, page: _Page, resource_type: str, acc: _Paging) -> None:
        """Parse a page's matches (after its response is closed: parsing is not EHR wait time)."""
        acc.warnings.extend(page.warnings)
        with fastparse.shared_elements():
            for resource in page.matches:
                try:
                    acc.resources.append(parse_resource(resource, resource_type))
                except ValueError:
                    acc.skipped += 1

    def _get(self, url: str, reader: Callable[[transport.Body], Any]) -> tuple[Any, int]:
        """One GET with the current token; on 401, refresh once (shared across threads) and retry."""
        # Defence in depth: every caller builds URLs under the base, but check at the single
        # place a token is attached.
        if not self._is_own_url(url):
            raise InvalidResponse("refused to send the access token outside the FHIR server")
        token = self._token
        try:
            return self._send(url, token, reader)
        except Unauthorized:
            new_token = self._refreshed_token(token)
            if new_token is None:
                raise
            return self._send(url, new_token, reader)

    def _refreshed_token(self, failed_token: str) -> str | None:
        with self._refresh_lock:
            if self._token != failed_token:
                return self._token  # another thread already refreshed
            if self._on_unauthorized is None or self._refresh_used:
                return None
            self._refresh_used = True  # one refresh per client: never loop on a rejected token
            # The callback answers None when the grant cannot be renewed; anything it raises is a
            # bug or an outage, and reaches the panel (logged there) rather than reading as a 401.
            new_token = self._on_unauthorized()
            if new_token:
                self._token = new_token
            return new_token or None

    def _observe(self, exchange: transport.Exchange) -> None:
        with self._accesses_lock:
            self._waits.append((exchange.started, exchange.ended))

    def _send(self, url: str, token: str, reader: Callable[[transport.Body], Any]) -> tuple[Any, int]:
        """One GET through the transport; a 2xx body goes to `reader` while the response is open."""
        headers = {"Accept": FHIR_JSON, "Authorization": f"Bearer {token}"}
        status: int | None = None
        try:
            with transport.stream(
                "GET",
                url,
                headers=headers,
                limit=MAX_RESPONSE_BYTES,
                timeout=self.timeout,
                session=self.session,
                observer=self._observe,
            ) as stream:
                status = stream.status_code
                if 200 <= status < 300:
                    return _read_ok(stream, reader), status
                try:
                    error_body = json.loads(_read_capped_error(stream))
                except (ValueError, RecursionError):
                    error_body = None
                retry_after = stream.headers.get("Retry-After")
        except transport.Timeout as exc:
            raise Timeout("the EHR did not answer in time", status_code=status) from exc
        except transport.TooLarge as exc:
            raise InvalidResponse("the EHR's answer was implausibly large", status_code=status) from exc
        except transport.RefusedURL as exc:
            raise RefusedURL(f"the FHIR server's address is not allowed ({exc})") from exc
        except transport.OutboundError as exc:
            raise Unreachable("the EHR could not be reached") from exc
        _raise_for_status(status, error_body, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover


def _read_ok(stream: transport.Body, reader: Callable[[transport.Body], Any]) -> Any:
    try:
        return reader(stream)
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested absurdly deep
        raise InvalidResponse("the EHR's answer was not FHIR JSON", status_code=stream.status_code) from exc


def _read_capped_error(stream: transport.Body) -> bytes:
    """An error answer's body for its OperationOutcome text; a huge one yields no text, not a failure."""
    chunks, size = [], 0
    while chunk := stream.read(transport.READ_CHUNK):
        size += len(chunk)
        if size > MAX_ERROR_BYTES:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_for_status(status: int, body: Any, retry_after: str | None) -> None:
    diagnostics = outcome_diagnostics(body)
    kwargs = {"status_code": status, "diagnostics": diagnostics}
    if status == 401:
        raise Unauthorized("the EHR did not accept the access token", **kwargs)
    if status == 403:
        raise Forbidden("not authorized", **kwargs)
    if status == 404:
        raise NotFound("not found", **kwargs)
    if status == 410:
        raise Gone("deleted", **kwargs)
    if status == 429:
        wait = _retry_after(retry_after)
        raise RateLimited("the EHR is rate limiting requests", retry_after=wait, **kwargs)
    if status >= 500:
        raise ServerError(f"the EHR reported an error ({status})", **kwargs)
    if 300 <= status < 400:
        raise InvalidResponse(f"unexpected redirect ({status})", **kwargs)
    raise BadRequest(f"the EHR refused the query ({status})", **kwargs)


def _check_type(resource_type: str) -> None:
    if not _RESOURCE_TYPE_RE.match(resource_type or ""):
        raise ValueError("invalid resource type")


def _next_link(bundle: dict, current_url: str) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(current_url, link["url"].strip())
    return None


def _retry_after(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        return min(int(value.strip()), 3600)
    return None
