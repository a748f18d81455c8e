"""The suite-wide guard itself: it must catch tokens and codes in URLs, and server errors."""

from __future__ import annotations

import pytest

from tests.browser.recorder import Recorder, Seen

pytestmark = pytest.mark.browser

APP = "http://localhost:8123"
EHR = "http://127.0.0.1:9123"


class _Context:
    def on(self, event, handler) -> None:
        pass


def _recorder(*urls: str, referer: str = "", status: int = 200) -> Recorder:
    rec = Recorder(_Context(), app_origin=APP)
    rec.requests = [Seen("GET", url, referer) for url in urls]
    rec.responses = [Seen("GET", url, status=status) for url in urls]
    return rec


def test_it_accepts_a_code_on_the_callback_hop_only():
    _recorder(f"{APP}/callback?code=abc123&state=s", f"{APP}/c/h/", f"{EHR}/fhir/Patient").assert_clean()


@pytest.mark.parametrize(
    "url",
    [
        f"{APP}/c/h/?access_token=x",
        f"{APP}/c/h/#refresh_token=x",
        f"{APP}/c/h/?id_token=x",
        f"{APP}/c/h/?code=abc123",
        f"{APP}/c/h/?v=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.sig",
    ],
)
def test_it_refuses_credentials_in_app_urls(url):
    with pytest.raises(AssertionError):
        _recorder(url).assert_clean()


def test_it_refuses_a_callback_code_seen_again_elsewhere():
    with pytest.raises(AssertionError, match="leaked"):
        _recorder(f"{APP}/callback?code=abc123&state=s", f"{EHR}/ehr/?x=abc123").assert_clean()
    with pytest.raises(AssertionError, match="Referer"):
        _recorder(
            f"{APP}/callback?code=abc123&state=s", f"{EHR}/x", referer=f"{APP}/callback?code=abc123"
        ).assert_clean()


def test_it_refuses_server_errors():
    with pytest.raises(AssertionError, match="server errors"):
        _recorder(f"{APP}/c/h/", status=500).assert_clean()


def test_it_refuses_script_errors_and_unexpected_csp_violations():
    rec = _recorder(f"{APP}/c/h/")
    rec.console = [
        "error: Refused to load the script because it violates the following Content Security Policy"
    ]
    with pytest.raises(AssertionError, match="CSP"):
        rec.assert_clean()
    rec.console = ["pageerror: TypeError: x is undefined"]
    with pytest.raises(AssertionError, match="script errors"):
        rec.assert_clean()
    rec.console = [
        'error: Framing violates the following Content Security Policy directive: "frame-ancestors"'
    ]
    rec.expected_console.append("frame-ancestors")
    rec.assert_clean()
