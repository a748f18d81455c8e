"""Fault/latency injection per client, and request counters for tests and benchmarks.

Faults live in `Client.faults` (JSON), so they survive restarts and can be edited in the admin
or switched at run time through the loopback-only `/_sandbox/faults` endpoint. Counters are kept
in memory: the sandbox serves from one multi-threaded process, so they are exact.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from django.db import transaction

# name -> (type, description). Unknown keys are refused by the endpoint.
FAULTS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "resource_type": (str, "limit FHIR faults to this resource type (blank = all)"),
    "latency_ms": (int, "added latency on every FHIR request"),
    "access_token_ttl": (int, "access tokens expire after N seconds"),
    "revoke_refresh_tokens": (bool, "refresh tokens are refused (invalid_grant)"),
    "refresh_rotation": (bool, "override the client's refresh-token rotation"),
    "fhir_status": (int, "answer FHIR requests with this status (500, 503, 429, ...)"),
    "fhir_status_times": (int, "only the next N FHIR requests fail (0/absent = all)"),
    "retry_after": (int, "Retry-After seconds sent with 429/503 (default 1)"),
    "token_status": (int, "answer token requests with this status (e.g. 500, 503)"),
    "token_status_times": (int, "only the next N token requests fail (0/absent = all)"),
    "token_latency_ms": (int, "token requests wait this long before they are handled"),
    "malformed_json": (bool, "FHIR responses are truncated, invalid JSON"),
    "invalid_resources": (bool, "FHIR responses carry resources that are not valid FHIR"),
    "slow_ms": (int, "FHIR responses take this long (e.g. longer than the app's timeout)"),
    "slow_times": (int, "only the next N FHIR requests are slow (0/absent = all)"),
    "looping_next": (bool, "searchset `next` links point back to the same page"),
    "drop_scopes": (list, "scopes removed from every grant (as if the user unticked them)"),
    "bulk_kickoff_status": (int, "$export kick-offs answer this status (e.g. 429 with Retry-After)"),
    "bulk_kickoff_times": (int, "only the next N kick-offs fail (0/absent = all)"),
    "bulk_status": (int, "export status polls answer this status (e.g. 500 mid-poll, 429)"),
    "bulk_status_times": (int, "only the next N status polls fail (0/absent = all)"),
    "bulk_polls": (int, "status polls answered 202 (X-Progress) before the manifest (default 1)"),
    "bulk_retry_after": (int, "Retry-After seconds on export 202/429/503 answers (default 1)"),
    "bulk_file_expired": (bool, "export file URLs answer 410 (expired)"),
    "bulk_export_error": (bool, "the export fails: status polls answer 500 with an OperationOutcome"),
    "bulk_error_codes": (
        list,
        "the export completes with an error file: one OperationOutcome (severity error) per code, "
        'e.g. ["not-found", "not-found", "processing"]',
    ),
    "bulk_no_patient_param": (bool, "kick-offs with `patient` parameters are refused (400 not-supported)"),
}


class FaultError(ValueError):
    pass


def validate(settings: dict) -> dict:
    """A clean fault dict from user input, or FaultError."""
    if not isinstance(settings, dict):
        raise FaultError("faults must be a JSON object")
    clean: dict = {}
    for key, value in settings.items():
        if key not in FAULTS:
            raise FaultError(f"unknown fault: {key}")
        expected = FAULTS[key][0]
        if value is None:
            continue
        if expected is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise FaultError(f"{key} must be a non-negative integer")
        if expected is bool and not isinstance(value, bool):
            raise FaultError(f"{key} must be true or false")
        if expected is str and not isinstance(value, str):
            raise FaultError(f"{key} must be a string")
        if expected is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise FaultError(f"{key} must be a list of strings")
        clean[key] = value
    return clean


def applies_to(faults: dict, rtype: str | None) -> bool:
    limit = faults.get("resource_type")
    return not limit or limit == rtype


def consume(client_pk: int, key: str, times_key: str) -> bool:
    """Whether a counted fault fires now; decrements its counter atomically in the database."""
    from sandbox.store import Client

    with transaction.atomic():
        client = Client.objects.select_for_update().get(pk=client_pk)
        faults = dict(client.faults or {})
        if not faults.get(key):
            return False
        times = faults.get(times_key)
        if not times:
            return True
        faults[times_key] = times - 1
        if faults[times_key] == 0:
            faults.pop(key, None)
            faults.pop(times_key, None)
        client.faults = faults
        client.save(update_fields=["faults"])
        return True


TIMELINE_MAX = 5000  # the newest requests only: a benchmark resets stats before each measurement


class Stats:
    """Thread-safe counters of token-endpoint calls and FHIR requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._token: dict[str, int] = defaultdict(int)
            self._token_by_client: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self._fhir: dict[str, int] = defaultdict(int)
            self._fhir_by_client: dict[str, int] = defaultdict(int)
            self._fhir_total = 0
            self._other: dict[str, int] = defaultdict(int)
            self._timeline: deque[dict] = deque(maxlen=TIMELINE_MAX)

    def token(self, grant_type: str) -> None:
        """Every call that reaches the token endpoint, before client authentication."""
        with self._lock:
            self._token[grant_type] += 1

    def token_client(self, grant_type: str, client_id: str) -> None:
        """Calls by an authenticated client."""
        with self._lock:
            self._token_by_client[client_id][grant_type] += 1

    def fhir(self, rtype: str) -> None:
        with self._lock:
            self._fhir_total += 1
            self._fhir[rtype] += 1

    def fhir_client(self, client_id: str) -> None:
        with self._lock:
            self._fhir_by_client[client_id] += 1

    def other(self, name: str) -> None:
        with self._lock:
            self._other[name] += 1

    def timed(self, kind: str, rtype: str, start: float, end: float, status: int) -> None:
        """One served request's wall-clock interval (epoch seconds), for wave counting."""
        with self._lock:
            self._timeline.append({"kind": kind, "type": rtype, "start": start, "end": end, "status": status})

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "token": {"total": sum(self._token.values()), **self._token},
                "token_by_client": {k: dict(v) for k, v in self._token_by_client.items()},
                "fhir": {"total": self._fhir_total, "by_type": dict(self._fhir)},
                "fhir_by_client": dict(self._fhir_by_client),
                "other": dict(self._other),
                "timeline": list(self._timeline),
            }


stats = Stats()


# Paths whose timing a benchmark reads; anything else (EHR pages, /_sandbox/) is not recorded.
_TIMED = (
    ("/fhir/.well-known/smart-configuration", "discovery"),
    ("/fhir/metadata", "metadata"),
    ("/fhir/", "fhir"),
    ("/auth/token", "token"),
    ("/auth/authorize", "authorize"),
    ("/.well-known/jwks.json", "jwks"),
    ("/smart-style.json", "style"),
)


def _classify(path: str) -> tuple[str, str] | None:
    for prefix, kind in _TIMED:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            rtype = path[len(prefix) :].split("/", 1)[0] if kind == "fhir" else ""
            return kind, rtype
    return None


class TimelineMiddleware:
    """Records start/end of each OAuth/FHIR request in `stats` (the benchmark counts waves from it)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        what = _classify(request.path)
        if what is None:
            return self.get_response(request)
        start = time.time()
        response = self.get_response(request)
        stats.timed(what[0], what[1], start, time.time(), response.status_code)
        return response
