"""Bulk Data export client: kick-off, polling, streamed NDJSON downloads, cancel.

Everything goes through `smartapp.transport`. The backend token (`smartapp.backend`) is sent
only to the EHR's own origin (the status URL must be there; a file URL elsewhere gets no token,
and one that needs the token is refused). Files are read line by line, never whole: the data
(`output`), the deletions since `_since` (`deleted`: transaction Bundles of DELETE entries) and
the EHR's messages (`error`: OperationOutcomes, kept as counts only) through the same path.

Reference: https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

from django.conf import settings

from smartapp import backend, transport
from smartapp.bulk_report import ExportReport, deleted_reference
from smartapp.models import BackendRegistration

logger = logging.getLogger(__name__)

DEFAULT_TYPES = ("Patient", "Observation", "Condition", "Encounter")
MAX_STATUS_BYTES = 4 * 1024 * 1024  # a manifest lists files; an OperationOutcome is small
MAX_LINE_BYTES = 16 * 1024 * 1024  # one resource
MAX_TRANSIENT_ERRORS = 5  # consecutive 5xx/429 answers tolerated while kicking off or polling
MAX_PATIENTS = 500  # `patient` parameters in one kick-off; more, and the caller exports the group

class ExportError(Exception):
    """The export failed; `str(exc)` is safe to log and show an admin."""


class PatientFilterRefused(ExportError):
    """The EHR refused a kick-off narrowed to some patients (`patient` is optional for servers)."""


@dataclass(frozen=True)
class ExportFile:
    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class Manifest:
    transaction_time: str
    requires_access_token: bool
    output: tuple[ExportFile, ...]
    errors: tuple[ExportFile, ...] = ()
    deleted: tuple[ExportFile, ...] = ()


@dataclass
class Progress:
    """What a caller may show: the phase, the server's X-Progress text, resources so far."""

    phase: str = "kick-off"
    server: str = ""
    resources: int = 0
    files_done: int = 0
    files: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); `default` without one."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return default


def _diagnostics(reply: transport.Reply) -> str:
    """The first issue of an OperationOutcome body, shortened; '' for anything else."""
    try:
        body = reply.json()
        issue = body["issue"][0]
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code", "")
        return str(text)[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def _is_transient(reply: transport.Reply) -> bool:
    """A 429/503, or a 5xx whose OperationOutcome says `transient` (or has no OperationOutcome)."""
    if reply.status_code in (429, 503):
        return True
    if reply.status_code < 500:
        return False
    try:
        codes = {issue.get("code") for issue in reply.json()["issue"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return True  # a proxy's bare 502/504: worth a retry
    return bool(codes & {"transient", "throttled", "timeout", "lock-error"})


class BulkExport:
    """One export from one EHR (a group or all patients), start to finish."""

    def __init__(
        self,
        registration: BackendRegistration,
        *,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[Progress], None] | None = None,
    ):
        self.reg = registration
        self.base = registration.ehr.iss
        self.origin = transport.origin(self.base)
        self.deadline = time.monotonic() + (deadline or _setting("SMART_BULK_DEADLINE", 3600))
        self.max_interval = _setting("SMART_BULK_MAX_POLL_INTERVAL", 60)
        self.file_limit = int(_setting("SMART_BULK_FILE_LIMIT", 2 * 1024**3))
        self.sleep = sleep
        self.progress = Progress()
        self.on_progress = on_progress
        self.status_url = ""
        self.report = ExportReport()
        self._token: backend.BackendToken | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ExportError("The export did not finish before its deadline.")
        return left

    def _wait(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.max_interval)
        if seconds >= self._left():
            raise ExportError("The export did not finish before its deadline.")
        self.sleep(seconds)

    def _report(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self.progress, name, value)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _auth(self) -> dict[str, str]:
        if self._token is None or self._token.expires_at - backend.EXPIRY_SKEW < time.time():
            try:
                self._token = backend.get_token(self.reg)
            except backend.BackendError as exc:
                raise ExportError(f"No backend token: {exc}") from exc
        return {"Authorization": f"Bearer {self._token.access_token}"}

    def _own(self, url: str) -> bool:
        return transport.origin(url) == self.origin

    def _call(
        self,
        method: str,
        url: str,
        *,
        accept: str,
        params: dict | None = None,
        body: bytes | None = None,
        **headers,
    ) -> transport.Reply:
        """One call to the EHR with the token, a new token once after a 401."""
        if not self._own(url):
            raise ExportError("The EHR pointed the export at another server; no token is sent there.")
        for attempt in (1, 2):
            try:
                reply = transport.fetch(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers={"Accept": accept, **headers, **self._auth()},
                    limit=MAX_STATUS_BYTES,
                    deadline=min(transport.total_deadline(), self._left()),
                )
            except transport.RefusedURL as exc:
                raise ExportError(f"The app does not fetch this address: {exc}") from exc
            except transport.TooLarge as exc:
                raise ExportError("The EHR's export answer is implausibly large.") from exc
            except transport.OutboundError as exc:
                raise ExportError(f"The EHR could not be reached ({exc}).") from exc
            if reply.status_code == 401 and attempt == 1 and self._token is not None:
                backend.forget_token(self.reg, self._token)
                self._token = None
                continue
            return reply
        return reply

    def group_name(self) -> str:
        """The group's own name ("Hypertension clinic") for the staff page; best effort: "" when
        there is no group, or the EHR does not let this client read it."""
        if not self.reg.group_id:
            return ""
        try:
            url = f"{self.base}/Group/{self.reg.group_id}"
            reply = self._call("GET", url, accept="application/fhir+json")
        except ExportError:
            return ""
        try:
            body = json.loads(reply.body) if reply.status_code == 200 else {}
        except ValueError:
            return ""
        name = body.get("name") if isinstance(body, dict) else None
        return name.strip()[:200] if isinstance(name, str) else ""

    # --- the protocol -----------------------------------------------------------------------

    def kickoff(
        self, types: tuple[str, ...] = DEFAULT_TYPES, since: str = "", patients: Iterable[str] = ()
    ) -> str:
        """Start the export; returns the status URL (Content-Location).

        With `patients`, a POST narrowed to those patients (`patient` parameters): optional for
        servers, so a refusal raises `PatientFilterRefused` and the caller may export the group.
        """
        # Reference: https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-kick-off-request
        path = f"Group/{self.reg.group_id}/$export" if self.reg.group_id else "Patient/$export"
        params = {"_type": ",".join(types), "_outputFormat": "application/fhir+ndjson"}
        if since:
            params["_since"] = since
        patients = list(patients)
        request: dict[str, Any] = {"params": params}
        if patients:
            parameters = [{"name": k, "valueString": v} for k, v in params.items() if k != "_since"]
            if since:
                parameters.append({"name": "_since", "valueInstant": since})
            parameters += [
                {"name": "patient", "valueReference": {"reference": f"Patient/{p}"}} for p in patients
            ]
            body = {"resourceType": "Parameters", "parameter": parameters}
            request = {"body": json.dumps(body).encode(), "Content-Type": "application/fhir+json"}
        transient = 0
        while True:
            reply = self._call(
                "POST" if patients else "GET",
                f"{self.base}/{path}",
                accept="application/fhir+json",
                Prefer="respond-async",
                **request,
            )
            if reply.status_code == 202:
                location = reply.headers.get("Content-Location", "")
                if not location:
                    raise ExportError("The EHR started an export but named no status URL.")
                self.status_url = urljoin(self.base + "/", location)
                if not self._own(self.status_url):
                    raise ExportError("The export's status URL is on another server; no token is sent there.")
                return self.status_url
            if _is_transient(reply) and transient < MAX_TRANSIENT_ERRORS:
                transient += 1
                self._wait(retry_after(reply.headers.get("Retry-After"), 2**transient))
                continue
            detail = _diagnostics(reply)
            message = (
                f"The EHR refused the export (HTTP {reply.status_code}){': ' + detail if detail else ''}."
            )
            if patients and reply.status_code in (400, 404, 405, 415, 422, 501):
                raise PatientFilterRefused(message)
            raise ExportError(message)

    def poll(self) -> Manifest:
        """Poll the status URL until the manifest, honouring Retry-After, with capped backoff."""
        # Reference: https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-status-request
        interval, transient = 1.0, 0
        self._report(phase="waiting")
        while True:
            reply = self._call("GET", self.status_url, accept="application/json")
            if reply.status_code == 200:
                return self._manifest(reply)
            if reply.status_code == 202:
                transient = 0
                self._report(server=reply.headers.get("X-Progress", "")[:100])
                self._wait(retry_after(reply.headers.get("Retry-After"), interval))
                interval = min(interval * 2, self.max_interval)
                continue
            if _is_transient(reply) and transient < MAX_TRANSIENT_ERRORS:
                transient += 1
                self._wait(retry_after(reply.headers.get("Retry-After"), interval))
                interval = min(interval * 2, self.max_interval)
                continue
            detail = _diagnostics(reply)
            raise ExportError(
                f"The export failed (HTTP {reply.status_code}){': ' + detail if detail else ''}."
            )

    def _manifest(self, reply: transport.Reply) -> Manifest:
        try:
            body = reply.json()
            files = tuple(
                ExportFile(str(item["type"]), urljoin(self.status_url, str(item["url"])), item.get("count"))
                for item in body.get("output") or []
            )
            manifest = Manifest(
                str(body["transactionTime"]),
                bool(body.get("requiresAccessToken")),
                files,
                self._files(body, "error", "OperationOutcome"),
                self._files(body, "deleted", "Bundle"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExportError("The EHR's export manifest is malformed.") from exc
        listed = len(files) + len(manifest.deleted) + len(manifest.errors)
        self._report(phase="downloading", files=self.progress.files_done + listed)
        return manifest

    def _files(self, body: dict, key: str, rtype: str) -> tuple[ExportFile, ...]:
        """The `deleted` or `error` file items: absent or empty is none; a type, if sent, must fit."""
        # Reference: https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status
        items = body.get(key) or []
        if not isinstance(items, list):
            raise TypeError(f"{key} is not an array")
        files = []
        for item in items:
            if item.get("type", rtype) != rtype:
                raise ValueError(f"{key} file of type {item.get('type')!r}")
            files.append(ExportFile(rtype, urljoin(self.status_url, str(item["url"])), item.get("count")))
        return tuple(files)

    def _lines(self, manifest: Manifest, item: ExportFile) -> Iterator[bytes]:
        """The non-blank lines of one NDJSON file as they arrive: size-capped, within the deadline,
        the token only to the EHR's own origin."""
        # Reference: https://hl7.org/fhir/uv/bulkdata/export.html#file-request
        headers = {"Accept": "application/fhir+ndjson"}
        if manifest.requires_access_token:
            if not self._own(item.url):
                raise ExportError("An export file needs the token but lives on another server; refused.")
            headers.update(self._auth())
        try:
            with transport.stream(
                "GET", item.url, headers=headers, limit=self.file_limit, deadline=self._left()
            ) as body:
                if body.status_code != 200:
                    raise ExportError(f"An export file could not be downloaded (HTTP {body.status_code}).")
                pending = b""
                while chunk := body.read(transport.READ_CHUNK):
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    if len(pending) > MAX_LINE_BYTES:
                        raise ExportError("An export file holds an implausibly long line.")
                    for line in complete:
                        if line.strip():
                            yield line
                if pending.strip():
                    yield pending
        except transport.RefusedURL as exc:
            raise ExportError(f"The app does not fetch this address: {exc}") from exc
        except transport.TooLarge as exc:
            raise ExportError("An export file is larger than the app accepts.") from exc
        except transport.OutboundError as exc:
            raise ExportError(f"An export file download failed ({exc}).") from exc

    def lines(self, manifest: Manifest, item: ExportFile) -> Iterator[dict[str, Any]]:
        """The resources of one NDJSON file, parsed one line at a time as they arrive."""
        for line in self._lines(manifest, item):
            yield self._parse(line, item.type)

    @staticmethod
    def _parse(line: bytes, rtype: str) -> dict[str, Any]:
        try:
            resource = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ExportError("An export file holds a line that is not JSON.") from exc
        if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
            raise ExportError(f"An export file for {rtype} holds something else.")
        return resource

    @staticmethod
    def _loads(line: bytes, rtype: str) -> dict[str, Any] | None:
        """One line as a resource of `rtype`, or None. In deleted and error files a bad line is
        skipped and counted rather than failing the run: failing would also throw away every good
        deletion, and the same bad line would fail each later run too."""
        try:
            resource = json.loads(line)
        except (ValueError, RecursionError):
            return None
        return resource if isinstance(resource, dict) and resource.get("resourceType") == rtype else None

    def deletions(self, manifest: Manifest, item: ExportFile) -> Iterator[tuple[str, str]]:
        """(resource type, id) of each DELETE entry in one `deleted` file, checked strictly.

        Each line is a transaction Bundle; each entry's `request.method` is DELETE and its
        `request.url` is `Type/id`. A line or entry that is anything else (not JSON, not a
        transaction Bundle, another method, an absolute or versioned URL, an unknown type, an id
        outside the FHIR id pattern) is skipped and counted in `report.deletions_skipped`.
        """
        # Reference: https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status
        for line in self._lines(manifest, item):
            bundle = self._loads(line, "Bundle")
            entries = (
                bundle.get("entry") if bundle is not None and bundle.get("type") == "transaction" else None
            )
            if not isinstance(entries, list) or not entries:
                self.report.deletions_skipped += 1
                continue
            for entry in entries:
                found = deleted_reference(entry)
                if found is None:
                    self.report.deletions_skipped += 1
                else:
                    yield found

    def read_issues(self, manifest: Manifest, item: ExportFile) -> None:
        """Count the issues of one `error` file's OperationOutcomes into `report` (see ExportReport)."""
        for line in self._lines(manifest, item):
            outcome = self._loads(line, "OperationOutcome")
            issues = outcome.get("issue") if outcome is not None else None
            if not isinstance(issues, list) or not issues:
                self.report.issue_lines_skipped += 1
                continue
            for issue in issues:
                if isinstance(issue, dict):
                    self.report.add_issue(issue.get("severity"), issue.get("code"))
                else:
                    self.report.add_issue(None, None)

    def cancel(self) -> None:
        """DELETE the status URL (cancel, or tell the EHR the files are no longer needed); never raises."""
        if not self.status_url:
            return
        try:
            reply = self._call("DELETE", self.status_url, accept="application/fhir+json")
            if reply.status_code not in (200, 202, 204, 404):
                logger.info("export delete answered HTTP %s", reply.status_code)
        except ExportError as exc:
            logger.info("export delete failed: %s", exc)

    def run(
        self,
        handle: Callable[[dict[str, Any]], None],
        *,
        types: tuple[str, ...] = DEFAULT_TYPES,
        since: str = "",
        patients: Iterable[str] = (),
        on_deleted: Callable[[str, str], None] | None = None,
    ) -> Manifest:
        """Kick off, poll, stream every output file into `handle` (Patients first), then the
        deleted files into `on_deleted` (skipped without one) and the error files into `report`;
        DELETE at the end. May run again on the same instance (same token, same deadline)."""
        try:
            self.kickoff(types, since, patients)
            manifest = self.poll()
            order = {t: i for i, t in enumerate(DEFAULT_TYPES)}
            for item in sorted(manifest.output, key=lambda f: order.get(f.type, len(order))):
                for resource in self.lines(manifest, item):
                    handle(resource)
                    self.progress.resources += 1
                self._report(files_done=self.progress.files_done + 1)
            for item in manifest.deleted if on_deleted is not None else ():
                for rtype, rid in self.deletions(manifest, item):
                    on_deleted(rtype, rid)
                self._report(files_done=self.progress.files_done + 1)
            for item in manifest.errors:
                self.read_issues(manifest, item)
                self._report(files_done=self.progress.files_done + 1)
            return manifest
        finally:
            self.cancel()
            self.status_url = ""
