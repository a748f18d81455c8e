"""The one FHIR client: pooled sessions, bearer token, bounded paging, one refresh after a 401.

It knows nothing about Django sessions or launches: it gets a base URL, a token and an
`on_unauthorized` callback that returns a fresh token (or None). Every request it makes is to
the FHIR base it was built for; the token never goes anywhere else.

Reference: https://hl7.org/fhir/R4/http.html (RESTful API), https://hl7.org/fhir/R4/search.html#paging
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
from django.conf import settings

from clinical import fastparse
from clinical.fhir import memo
from clinical.fhir.bundles import Page, read_page
from clinical.fhir.errors import (
    OUTCOME_ERROR,
    OUTCOME_OK,
    BadRequest,
    FhirError,
    Forbidden,
    Gone,
    InvalidResponse,
    NotFound,
    RateLimited,
    RefusedURL,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    outcome_diagnostics,
)
from clinical.fhir.parsing import parse_resource
from smartapp import safety, transport

FHIR_JSON = "application/fhir+json"

# FHIR ids: the one pattern (smartapp.safety), [A-Za-z0-9-.]{1,256} (Epic's run past 64).
ID_PATTERN = safety.FHIR_ID
_RESOURCE_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_OPERATION_RE = re.compile(r"^[a-z][A-Za-z-]{0,63}$")


def _port(parts: Any) -> int:
    try:
        port = parts.port
    except ValueError:
        return -1
    if port is not None:
        return port
    return 443 if parts.scheme.lower() == "https" else 80


def path_under_base(url: str, base_url: str) -> str | None:
    """The path of `url` below the FHIR base `base_url` ("" for the base itself), or None when
    `url` is not on that server under that base: another scheme, host or port, credentials in it,
    or dot segments (also percent-encoded), which the HTTP stack would resolve to a path outside
    the base while passing a prefix check."""
    parts, base = urlsplit(url), urlsplit(base_url)
    if parts.scheme.lower() != base.scheme.lower() or parts.username or parts.password:
        return None
    if (parts.hostname or "").lower() != (base.hostname or "").lower() or _port(parts) != _port(base):
        return None
    segments = unquote(parts.path).split("/")
    if "." in segments or ".." in segments:
        return None
    base_path = base.path.rstrip("/")
    if parts.path == base_path:
        return ""
    return parts.path[len(base_path) + 1 :] if parts.path.startswith(base_path + "/") else None


def session_for(base_url: str) -> requests.Session:
    """The transport's keep-alive pool for this EHR origin (no cookies, no redirects)."""
    return transport.session_for(base_url)


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


def _read_json(stream: transport.Body) -> Any:
    return json.loads(stream.read_all())


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

                def reader(stream: transport.Body, cap: int = cap) -> Page:
                    return read_page(stream, resource_type, cap)

                page, status = self._get(url, reader)
                pages += 1
                if pages == 1 and type(page.total) is int and page.total >= 0:  # JSON true is no count
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
        return path_under_base(url, self.base_url) is not None

    def _collect(self, page: Page, resource_type: str, acc: _Paging) -> None:
        """Parse a page's matches (after its response is closed: parsing is not EHR wait time)."""
        acc.warnings.extend(page.warnings)
        cache = memo.store()
        with fastparse.shared_elements():
            for resource in page.matches:
                try:
                    acc.resources.append(memo.parse(resource, resource_type, self.base_url, cache))
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
