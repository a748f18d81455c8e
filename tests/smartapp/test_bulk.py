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


# --- the manifest's deleted and error arrays -----------------------------------------------------

DELETED = f"{ISS}/files/deleted.ndjson"
ERRORS = f"{ISS}/files/errors.ndjson"


def _bundle(*urls, method="DELETE", type_="transaction"):
    entries = [{"request": {"method": method, "url": url}} for url in urls]
    return json.dumps({"resourceType": "Bundle", "type": type_, "entry": entries}).encode()


def _deletions(reg, ehr_mock, body, **manifest):
    manifest.setdefault("deleted", [{"type": "Bundle", "url": DELETED}])
    ehr_mock.get(STATUS, json=_manifest(output=[], **manifest))
    ehr_mock.get(DELETED, body=body)
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    pairs: list[tuple[str, str]] = []
    export.run(lambda r: None, since="2025-01-01T00:00:00Z", on_deleted=lambda t, i: pairs.append((t, i)))
    return export, pairs


@pytest.mark.parametrize(
    ("extra", "deleted", "errors"),
    [
        ({}, 0, 0),  # absent (the spec lets a server omit `deleted`; `error` is required but tolerated)
        ({"deleted": None, "error": None}, 0, 0),
        ({"deleted": [], "error": []}, 0, 0),
        ({"deleted": [{"type": "Bundle", "url": "/files/d1"}], "error": [{"url": ERRORS}]}, 1, 1),
        ({"deleted": [{"url": DELETED}, {"url": DELETED + "2"}]}, 2, 0),  # type optional before v2
    ],
)
def test_the_manifest_lists_deleted_and_error_files(reg, ehr_mock, extra, deleted, errors):
    body = _manifest(output=[])
    body.pop("error")
    ehr_mock.get(STATUS, json={**body, **extra})
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    export.kickoff()
    manifest = export.poll()
    assert (len(manifest.deleted), len(manifest.errors)) == (deleted, errors)
    assert all(f.type == "Bundle" for f in manifest.deleted)
    assert all(f.type == "OperationOutcome" for f in manifest.errors)
    if deleted and extra["deleted"][0]["url"].startswith("/"):
        assert (
            manifest.deleted[0].url == f"{ISS.removesuffix('/fhir')}/files/d1"
        )  # relative to the status URL


@pytest.mark.parametrize(
    "extra",
    [
        {"deleted": {"type": "Bundle", "url": DELETED}},  # not an array
        {"deleted": [{"type": "Bundle"}]},  # no url
        {"deleted": [{"type": "Patient", "url": DELETED}]},  # deleted files hold Bundles only
        {"deleted": ["https://ehr.example.org/fhir/files/deleted.ndjson"]},
        {"error": [{"type": "Patient", "url": ERRORS}]},
    ],
)
def test_a_malformed_deleted_or_error_array_fails_the_export(reg, ehr_mock, extra):
    ehr_mock.get(STATUS, json=_manifest(output=[], **extra))
    with pytest.raises(bulk.ExportError, match="manifest is malformed"):
        _run(reg)
    assert any(c.request.method == "DELETE" for c in ehr_mock.calls)


def test_deletions_are_type_and_id_pairs(reg, ehr_mock):
    body = b"\n".join([_bundle("Patient/p1", "Observation/obs-1.a"), b"", _bundle("Encounter/" + "e" * 256)])
    export, pairs = _deletions(reg, ehr_mock, body)
    assert pairs == [("Patient", "p1"), ("Observation", "obs-1.a"), ("Encounter", "e" * 256)]
    assert export.report.deletions_skipped == 0
    download = next(c.request for c in ehr_mock.calls if c.request.url == DELETED)
    assert download.headers["Authorization"] == "Bearer BT"  # own origin, requiresAccessToken
    assert download.headers["Accept"] == "application/fhir+ndjson"


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'{"resourceType": "OperationOutcome", "issue": []}',
        b'{"resourceType": "Bundle", "type": "transaction"}',  # no entries
        _bundle(),  # an empty entry list
        _bundle("Patient/p9", type_="batch"),
        _bundle("Patient/p9", type_="collection"),
        _bundle("Patient/p9", method="GET"),
        _bundle("Patient/p9", method="delete"),  # FHIR codes are case-sensitive
        _bundle("https://ehr.example.org/fhir/Patient/p9"),  # absolute: not the spec's Type/id
        _bundle("Patient/p9/_history/2"),
        _bundle("Patient"),
        _bundle("patient/p9"),  # not a resource type
        _bundle("Widget/p9"),
        _bundle("Patient/p 9"),  # not a FHIR id
        _bundle("Patient/p9\n"),
        _bundle("Patient/../p9"),
        _bundle("Patient/" + "x" * 257),  # longer than any id the app accepts
        _bundle("Patient/"),
        json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": "x"}]}).encode(),
        json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [7]}).encode(),
        json.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE"}}]}
        ).encode(),
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": ["Patient/p9"]}}],
            }
        ).encode(),
        b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's recursion limit
    ],
)
def test_a_bad_deletion_line_or_entry_is_skipped_and_counted(reg, ehr_mock, line):
    body = _bundle("Condition/c1") + b"\n" + line + b"\n" + _bundle("Condition/c2")
    export, pairs = _deletions(reg, ehr_mock, body)
    assert pairs == [("Condition", "c1"), ("Condition", "c2")]  # the good ones on either side still count
    assert export.report.deletions_skipped == 1


def test_each_bad_entry_of_a_bundle_is_counted_and_the_good_ones_kept(reg, ehr_mock):
    body = _bundle("Observation/o1", "Observation/o 2", "Observation/o3", "Nope/x")
    export, pairs = _deletions(reg, ehr_mock, body)
    assert pairs == [("Observation", "o1"), ("Observation", "o3")]
    assert export.report.deletions_skipped == 2


def test_a_deleted_file_that_needs_the_token_on_another_origin_is_refused(reg, ehr_mock):
    other = "https://files.example.net/deleted.ndjson"
    with pytest.raises(bulk.ExportError, match="another server"):
        _deletions(reg, ehr_mock, _bundle("Patient/p1"), deleted=[{"type": "Bundle", "url": other}])
    assert not any(c.request.url == other for c in ehr_mock.calls)
    assert any(c.request.method == "DELETE" for c in ehr_mock.calls)


def test_a_deleted_file_on_another_origin_without_the_token_is_read_without_it(reg, ehr_mock):
    other = "https://files.example.net/deleted.ndjson"
    ehr_mock.get(other, body=_bundle("Patient/p1"))
    _export, pairs = _deletions(
        reg, ehr_mock, b"", deleted=[{"type": "Bundle", "url": other}], requires=False
    )
    assert pairs == [("Patient", "p1")]
    download = next(c.request for c in ehr_mock.calls if c.request.url == other)
    assert "Authorization" not in download.headers


def test_deleted_files_are_bounded_like_the_data(reg, ehr_mock, settings):
    settings.SMART_BULK_FILE_LIMIT = 100
    with pytest.raises(bulk.ExportError, match="larger"):
        _deletions(reg, ehr_mock, _bundle(*[f"Patient/p{i}" for i in range(20)]))


def test_an_implausibly_long_deletion_line_fails_the_export(reg, ehr_mock, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_LINE_BYTES", 64)
    with pytest.raises(bulk.ExportError, match="long line"):
        _deletions(reg, ehr_mock, _bundle(*[f"Patient/p{i}" for i in range(20)]))


def test_an_expired_deleted_file_fails_the_export(reg, ehr_mock):
    ehr_mock.get(STATUS, json=_manifest(output=[], deleted=[{"type": "Bundle", "url": DELETED}]))
    ehr_mock.get(DELETED, status=410)
    with pytest.raises(bulk.ExportError, match="HTTP 410"):
        bulk.BulkExport(reg, sleep=lambda s: None).run(lambda r: None, on_deleted=lambda t, i: None)


def test_deleted_files_are_read_after_the_data_and_only_when_asked_for(reg, ehr_mock):
    ehr_mock.get(STATUS, json=_manifest(deleted=[{"type": "Bundle", "url": DELETED}]))
    ehr_mock.get(FILE, body=PATIENTS)
    ehr_mock.get(DELETED, body=_bundle("Patient/a"))
    events: list[str] = []
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    export.run(lambda r: events.append(r["id"]), on_deleted=lambda t, i: events.append(f"-{t}/{i}"))
    assert events == ["a", "b", "-Patient/a"]
    assert (export.progress.files_done, export.progress.files) == (2, 2)
    ehr_mock.calls.reset()
    bulk.BulkExport(reg, sleep=lambda s: None).run(lambda r: None)  # no on_deleted: not downloaded
    assert not any(c.request.url == DELETED for c in ehr_mock.calls)


def _outcome(*issues):
    return json.dumps({"resourceType": "OperationOutcome", "issue": list(issues)}).encode()


SECRET = "Observation for MRN 000123 (Maria Garcia) could not be exported"


def test_error_files_are_counted_by_severity_and_code_and_their_text_is_not_kept(reg, ehr_mock):
    body = b"\n".join(
        [
            _outcome({"severity": "error", "code": "not-found", "diagnostics": SECRET}),
            _outcome(
                {"severity": "error", "code": "not-found", "details": {"text": SECRET}},
                {"severity": "error", "code": "processing", "expression": ["Patient.name"]},
            ),
            _outcome({"severity": "warning", "code": "informational", "diagnostics": SECRET}),
            _outcome({"severity": "severe", "code": "<script>"}),  # neither from its value set
            _outcome("not an issue"),
            b'{"resourceType": "Patient", "id": "p1"}',
            b"not json",
            _outcome(),  # an OperationOutcome needs at least one issue
        ]
    )
    ehr_mock.get(STATUS, json=_manifest(output=[], error=[{"type": "OperationOutcome", "url": ERRORS}]))
    ehr_mock.get(ERRORS, body=body)
    export = _run(reg)[0]
    assert export.report.by_severity() == {
        "error": {"not-found": 2, "other": 2, "processing": 1},
        "warning": {"informational": 1},
    }
    assert export.report.issue_lines_skipped == 3
    assert "MRN" not in repr(export.report) and "Garcia" not in json.dumps(export.report.by_severity())
    download = next(c.request for c in ehr_mock.calls if c.request.url == ERRORS)
    assert download.headers["Authorization"] == "Bearer BT"


def test_an_error_file_that_needs_the_token_on_another_origin_is_refused(reg, ehr_mock):
    other = "https://files.example.net/errors.ndjson"
    ehr_mock.get(STATUS, json=_manifest(output=[], error=[{"type": "OperationOutcome", "url": other}]))
    with pytest.raises(bulk.ExportError, match="another server"):
        _run(reg)
    assert not any(c.request.url == other for c in ehr_mock.calls)


def test_error_files_do_not_log_their_text(reg, ehr_mock, caplog):
    caplog.set_level("DEBUG")
    ehr_mock.get(STATUS, json=_manifest(output=[], error=[{"url": ERRORS}]))
    ehr_mock.get(ERRORS, body=_outcome({"severity": "error", "code": "exception", "diagnostics": SECRET}))
    _run(reg)
    assert "Garcia" not in caplog.text


# --- a kick-off narrowed to some patients ----------------------------------------------------------


def test_a_kickoff_for_some_patients_is_a_post_of_parameters(reg, ehr_mock):
    ehr_mock.post(KICKOFF, status=202, headers={"Content-Location": STATUS})
    ehr_mock.get(STATUS, json=_manifest(output=[]))
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    export.run(lambda r: None, types=("Observation", "Encounter"), patients=["p1", "p2"])
    kick = next(c.request for c in ehr_mock.calls if c.request.url == KICKOFF)
    assert kick.method == "POST"
    assert kick.headers["Prefer"] == "respond-async"
    assert kick.headers["Content-Type"] == "application/fhir+json"
    assert kick.headers["Authorization"] == "Bearer BT"
    body = json.loads(kick.body)
    assert body["resourceType"] == "Parameters"
    assert body["parameter"] == [
        {"name": "_type", "valueString": "Observation,Encounter"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
        {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
        {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
    ]


@pytest.mark.parametrize("status", [400, 405, 422, 501])
def test_a_refused_patient_parameter_says_so(reg, mocked, app_keys, status):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "not-supported"}]}
    mocked.post(KICKOFF, status=status, json=outcome)
    with pytest.raises(bulk.PatientFilterRefused):
        bulk.BulkExport(reg, sleep=lambda s: None).kickoff(("Observation",), patients=["p1"])


def test_other_kickoff_failures_are_not_taken_for_a_refused_patient_parameter(reg, mocked, app_keys):
    mocked.get(WELL_KNOWN, json=SMART_CONFIGURATION)
    mocked.post(TOKEN, json={"access_token": "BT", "token_type": "Bearer", "expires_in": 300})
    mocked.post(
        KICKOFF, status=403, json={"resourceType": "OperationOutcome", "issue": [{"code": "forbidden"}]}
    )
    mocked.get(KICKOFF, status=400, json={"resourceType": "OperationOutcome", "issue": [{"code": "invalid"}]})
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    with pytest.raises(bulk.ExportError) as refused:
        export.kickoff(("Observation",), patients=["p1"])
    assert not isinstance(refused.value, bulk.PatientFilterRefused)
    with pytest.raises(bulk.ExportError) as plain:
        export.kickoff(("Observation",))  # without patients, a 400 is just a refusal
    assert not isinstance(plain.value, bulk.PatientFilterRefused)


def test_one_export_object_runs_twice_and_cleans_up_each_time(reg, ehr_mock):
    second = f"{ISS}/bulkstatus/2"
    ehr_mock.post(KICKOFF, status=202, headers={"Content-Location": second})
    ehr_mock.get(STATUS, json=_manifest())
    ehr_mock.get(second, json=_manifest(output=[]))
    ehr_mock.delete(second, status=202)
    ehr_mock.get(FILE, body=PATIENTS)
    export = bulk.BulkExport(reg, sleep=lambda s: None)
    export.run(lambda r: None)
    export.run(lambda r: None, types=("Observation",), patients=["a"])
    deletes = [c.request.url for c in ehr_mock.calls if c.request.method == "DELETE"]
    assert deletes == [STATUS, second]
    assert export.progress.resources == 2
    assert export.status_url == ""
