"""The dashboard says which launch it shows: user, patient, encounter, granted and refused scopes."""

from __future__ import annotations

import pytest
import responses

from tests.clinical.helpers import register_all

pytestmark = pytest.mark.django_db


@responses.activate
def test_it_shows_the_launch_context_and_the_scopes_not_granted(client, make_launch, own):
    launch = make_launch(
        requested_scope="launch openid fhirUser patient/Patient.rs patient/Condition.rs",
        scope="launch openid fhirUser patient/Patient.rs",
        refresh_token="refresh-secret-value",
    )
    own(launch)
    register_all(responses)
    html = client.get(f"/c/{launch.handle}/").content.decode()
    details = html[html.index('class="launch-details"') :]
    assert "<code>Practitioner/pr-1</code>" in details
    assert "<code>pat-1</code>" in details and "<code>enc-1</code>" in details
    assert "<code>patient/Patient.rs</code>" in details
    not_granted = details[details.index("Not granted") :]
    assert "<code>patient/Condition.rs</code>" in not_granted
    assert "renewed automatically" in details
    assert "refresh-secret-value" not in html
    assert 'action="/logout"' in details and "csrfmiddlewaretoken" in details


@responses.activate
def test_it_lets_the_user_sign_out_inside_the_ehr_frame(client, make_launch, own, ehr):
    launch = make_launch()
    own(launch)
    response = client.post("/logout")
    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    # The signed-out page may be shown in the registered EHR's iframe (no DENY there).
    assert "X-Frame-Options" not in response
    assert f"frame-ancestors {ehr.frame_ancestors}" in response["Content-Security-Policy"]


def test_it_does_not_report_v1_grants_of_v2_requests_as_refused(make_launch):
    launch = make_launch(
        requested_scope="launch openid patient/Observation.rs patient/Condition.rs",
        scope="launch openid patient/Observation.read",
    )
    assert launch.scopes_not_granted() == ["patient/Condition.rs"]
