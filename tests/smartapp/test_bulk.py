"""The bulk export client against a mocked EHR: polling, backoff, tokens, streaming, cancel."""

from __future__ import annotations

import json

import pytest
import responses

from smartapp import bulk
from smartapp.models import BackendRegistration
from tests.smartapp.conftest import ISS, SMART_CONFIGURATION, TOKEN, WELL_KNOWN

KICKOFF = f"{ISS}/Group/g1/$export"
STATUS = f"{ISS}/bulkstatus/1"
FILE = f"{ISS}/files/patient.ndjson"


@pytest.fixture
def reg(ehr) -> BackendRegistration:
    return BackendRegistration.objects.create(ehr=ehr, client_id="backend-client", group_id="g1")


@pytest.fixture
def ehr_mock(mocked, app_keys):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    mocked.get(KICKOFF, status=202, headers={"Content-Location": STATUS})
    mocked.delete(STATUS, status=202)
    return mocked


def _manifest(url=FILE, requires=True, **extra):
    return {
        "transactionTime": "2025-01-15T10:00:00Z",
        "request": KICKOFF,
        "requiresAccessToken": requires,
        "output": [{"type": "Patient", "url": url, "count": 2}],
        "error": [],
        **extra,
    }


PATIENTS = b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n'


def _run(reg, **kwargs):
    sleeps: list[float] = []
    seen: list[dict] = []
    export = bulk.BulkExport(reg, sleep=sleeps.append, **kwargs)
    manifest = export.run(seen.append)
    return export, manifest, seen, sleeps


def test_it_exports_with_the_spec_headers_and_parameters(reg, ehr_mock):
    ehr_mock.get(STATUS, status=202, headers={"X-Progress": "50%", "Retry-After": "7"})
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(FILE, body=PATIENTS)
    _export, manifest, seen, sleeps = _run(reg)
    kick = next(c.request for c in ehr_mock.calls if "export" in c.request.url)
    assert kick.headers["Prefer"] == "respond-async"
    assert kick.headers["Accept"] == "application/fhir+json"
    assert kick.headers["Authorization"] == "Bearer BT"
    assert "_type=Patient%2CObservation%2CCondition%2CEncounter" in kick.url
    assert [p["id"] for p in seen] == ["a", "b"]
    assert sleeps == [7.0]
    assert manifest.transaction_time == "2025-01-15T10:00:00Z"
    assert any(c.request.method == "DELETE" for c in ehr_mock.calls)


def test_it_sends_since_on_incremental_runs(reg, ehr_mock):
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(FILE, body=PATIENTS)
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    export.run(lambda r: None, since="2025-01-01T00:00:00Z")
    kick = next(c.request for c in ehr_mock.calls if "export" in c.request.url)
    assert "_since=2025-01-01T00%3A00%3A00Z" in kick.url


def test_backoff_doubles_and_is_capped_without_retry_after(reg, ehr_mock, settings):
    settings.SMART_BULK_MAX_POLL_INTERVAL = 4
    for _ in range(5):
        ehr_mock.get(STATUS, status=202)
    ehr_mock.get(STATUS, json=_manifest(output=[]))
    sleeps = _run(reg)[3]
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_retry_after_as_an_http_date():
    assert bulk.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 5) == 0.0
    assert bulk.retry_after("120", 5) == 120.0
    assert bulk.retry_after(None, 5) == 5
    assert bulk.retry_after("soon", 5) == 5


def test_a_deadline_ends_the_polling_and_deletes(reg, ehr_mock):
    ehr_mock.get(STATUS, status=202, headers={"Retry-After": "30"})
    export = bulk.BulkExport(reg, deadline=10, sleep=lambda s: None)
    with pytest.raises(bulk.ExportError, match="deadline"):
        export.run(lambda r: None)
    assert any(c.request.method == "DELETE" for c in ehr_mock.calls)


def test_a_non_transient_error_fails_at_once_with_the_outcome(reg, ehr_mock):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "exception", "diagnostics": "boom"}]}
    ehr_mock.get(STATUS, status=500, json=outcome)
    with pytest.raises(bulk.ExportError, match=r"HTTP 500.*boom"):
        _run(reg)


def test_a_transient_error_is_retried(reg, ehr_mock):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "transient"}]}
    ehr_mock.get(STATUS, status=500, json=outcome)
    ehr_mock.get(STATUS, json=_manifest(output=[]))
    assert _run(reg)[1].output == ()


def test_a_401_gets_a_new_token_once(reg, ehr_mock):
    ehr_mock.get(STATUS, status=401)
    ehr_mock.get(STATUS, json=_manifest(output=[]))
    _run(reg)
    token_calls = [c for c in ehr_mock.calls if c.request.url == TOKEN]
    assert len(token_calls) == 2


def test_no_token_to_a_file_on_another_origin(reg, ehr_mock):
    other = "https://files.example.net/patient.ndjson"
    ehr_mock.get(STATUS, json=_manifest(url=other, requires=False))
    ehr_mock.get(other, body=PATIENTS)
    _run(reg)
    download = next(c.request for c in ehr_mock.calls if c.request.url == other)
    assert "Authorization" not in download.headers


def test_a_file_that_needs_the_token_on_another_origin_is_refused(reg, ehr_mock):
    other = "https://files.example.net/patient.ndjson"
    ehr_mock.get(STATUS, json=_manifest(url=other, requires=True))
    with pytest.raises(bulk.ExportError, match="another server"):
        _run(reg)
    assert not any(c.request.url == other for c in ehr_mock.calls)


def test_a_status_url_on_another_origin_is_refused(reg, mocked, app_keys):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    mocked.get(KICKOFF, status=202, headers={"Content-Location": "https://evil.example.net/status"})
    with pytest.raises(bulk.ExportError, match="another server"):
        _run(reg)


def test_lines_split_across_chunks_and_a_last_line_without_newline(reg, ehr_mock, monkeypatch):
    monkeypatch.setattr(bulk.transport, "READ_CHUNK", 7)
    body = b'{"resourceType":"Patient","id":"long-id-1"}\n\n{"resourceType":"Patient","id":"x"}'
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(FILE, body=body)
    assert [p["id"] for p in _run(reg)[2]] == ["long-id-1", "x"]


def test_a_file_larger_than_the_cap_is_refused(reg, ehr_mock, settings):
    settings.SMART_BULK_FILE_LIMIT = 50
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(FILE, body=PATIENTS * 10)
    with pytest.raises(bulk.ExportError, match="larger"):
        _run(reg)


@pytest.mark.parametrize(
    "body", [b"not json\n", b'{"resourceType":"Observation","id":"o"}\n', json.dumps([1]).encode() + b"\n"]
)
def test_a_bad_line_fails_the_export(reg, ehr_mock, body):
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(FILE, body=body)
    with pytest.raises(bulk.ExportError):
        _run(reg)


def test_a_kickoff_429_waits_for_retry_after(reg, mocked, app_keys):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    mocked.get(KICKOFF, status=429, headers={"Retry-After": "3"})
    mocked.get(KICKOFF, status=202, headers={"Content-Location": STATUS})
    mocked.get(STATUS, json=_manifest(output=[]))
    mocked.delete(STATUS, status=202)
    assert _run(reg)[3] == [3.0]


def test_an_unreachable_ehr_is_an_export_error(reg, mocked, app_keys):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    mocked.get(KICKOFF, body=responses.ConnectionError("down"))
    with pytest.raises(bulk.ExportError, match="could not be reached"):
        _run(reg)
