"""The simulated EHR: clinician login, patient list, chart, app tab with an EHR launch in an iframe."""

from __future__ import annotations

import html
import re
import sqlite3
from contextlib import closing
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.sandbox.flows import APP, auth_params, login, query

pytestmark = pytest.mark.e2e


def test_it_lists_demo_accounts_on_the_login_page(sandbox):
    page = requests.get(sandbox.base_url + "/auth/login", timeout=10).text
    for account in ("dr.smith", "dr.jones", "maria.garcia", "<code>demo</code>"):
        assert account in page


def test_it_requires_a_clinician_login(sandbox):
    resp = requests.get(sandbox.base_url + "/ehr/", allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/auth/login")
    browser = requests.Session()
    assert login(browser, sandbox, password="wrong").status_code == 200


def test_it_embeds_the_app_with_iss_and_a_single_use_launch(sandbox):
    browser = requests.Session()
    assert login(browser, sandbox).status_code == 302
    listing = browser.get(sandbox.base_url + "/ehr/", timeout=10).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert(1)" not in listing
    assert 'href="http://localhost:8765/"' in listing  # standalone link: launch URL origin + "/"
    chart = browser.get(f"{sandbox.base_url}/ehr/patients/pat-chen/", params={"app": APP}, timeout=10).text
    src = html.unescape(re.search(r'<iframe class="app"[^>]*src="([^"]+)"', chart).group(1))
    assert src.startswith("http://localhost:8765/launch?")
    launch_params = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    assert launch_params["iss"] == sandbox.fhir_base
    params = auth_params(sandbox, scope="launch openid fhirUser patient/*.rs", launch=launch_params["launch"])
    first = requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)
    code = query(first)["code"]
    assert code
    reuse = requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10)
    assert query(reuse)["error"] == "invalid_request"


def test_it_puts_the_chart_encounter_and_user_in_the_launch_context(sandbox):
    from tests.sandbox.flows import exchange, pkce

    browser = requests.Session()
    login(browser, sandbox, username="dr.jones")
    chart = browser.get(
        f"{sandbox.base_url}/ehr/patients/pat-garcia/",
        params={"app": APP, "encounter": "enc-garcia-2"},
        timeout=10,
    ).text
    src = html.unescape(re.search(r'<iframe class="app"[^>]*src="([^"]+)"', chart).group(1))
    launch = parse_qs(urlsplit(src).query)["launch"][0]
    verifier, challenge = pkce()
    params = auth_params(
        sandbox, scope="launch openid fhirUser patient/*.rs", launch=launch, code_challenge=challenge
    )
    code = query(requests.get(sandbox.authorize_url, params=params, allow_redirects=False, timeout=10))[
        "code"
    ]
    body = exchange(sandbox, code, verifier).json()
    assert body["patient"] == "pat-garcia"
    assert body["encounter"] == "enc-garcia-2"
    assert body["need_patient_banner"] is False
    import jwt

    assert jwt.decode(body["id_token"], options={"verify_signature": False})["fhirUser"].endswith(
        "/Practitioner/prac-jones"
    )


def test_it_allows_test_endpoints_from_loopback_and_reports_health(sandbox):
    assert requests.get(sandbox.base_url + "/_sandbox/health", timeout=5).json()["patients"] >= 8


def _stored(sandbox, sql: str, *params) -> list[tuple]:
    """Rows of the running sandbox's own database (read-only), so new data is covered as it lands."""
    with closing(sqlite3.connect(f"file:{sandbox.db_path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


def test_it_renders_every_page_of_every_patient_it_holds(sandbox):
    rows = _stored(sandbox, "SELECT rid FROM sandbox_resource WHERE rtype = 'Patient'")
    patients = [rid for (rid,) in rows]
    assert {"pat-garcia", "pat-odd", "pat-blank", "pat-xss"} <= set(patients)
    apps = [
        cid for (cid,) in _stored(sandbox, "SELECT client_id FROM sandbox_client WHERE launch_url != ''")
    ]
    assert APP in apps
    browser = requests.Session()
    login(browser, sandbox)
    listing = browser.get(sandbox.base_url + "/ehr/", timeout=10)
    assert listing.status_code == 200
    failures = []
    for pid in patients:
        assert f"/ehr/patients/{pid}/" in listing.text, f"{pid} missing from the patient list"
        chart_url = f"{sandbox.base_url}/ehr/patients/{pid}/"
        pages = [{}]
        encounters = _stored(
            sandbox, "SELECT rid FROM sandbox_resource WHERE rtype = 'Encounter' AND patient_id = ?", pid
        )
        pages += [{"encounter": eid} for (eid,) in encounters]
        pages += [{"app": cid} for cid in apps]
        if encounters:
            pages += [{"app": apps[0], "encounter": encounters[-1][0]}]
        for params in pages:
            page = browser.get(chart_url, params=params, timeout=30)
            if page.status_code != 200 or "Traceback" in page.text:
                failures.append(f"{pid} {params}: {page.status_code}")
                continue
            if "app" in params:
                assert '<iframe class="app"' in page.text, (pid, params)
            else:
                assert "<h2>Problems</h2>" in page.text, (pid, params)
            if "encounter" in params:
                assert f'value="{params["encounter"]}" selected' in page.text, (pid, params)
    assert not failures, failures


def test_it_names_a_problem_that_has_only_text(sandbox):
    browser = requests.Session()
    login(browser, sandbox)
    chart = browser.get(f"{sandbox.base_url}/ehr/patients/pat-odd/", timeout=10)
    assert chart.status_code == 200
    assert "Feels dizzy when standing up quickly" in chart.text  # code.text only, no coding
    assert "Hypertensive disorder, systemic arterial" in chart.text  # coding display, no text
    assert "entered in error" in chart.text


def test_it_serves_a_favicon_and_a_readable_sign_out_button(sandbox):
    icon = requests.get(sandbox.base_url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200
    assert icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
    page = requests.get(sandbox.base_url + "/auth/login", timeout=10).text
    # White text needs the header's dark blue behind it, not the browser's light grey button face.
    assert "header.ehr button { color: #fff; background: transparent;" in page
