"""The reliability battery's fixtures: the launch core's and the dashboard's, plus leak checks.

In-process tests reuse the mocked EHR of tests/smartapp (discovery, JWKS, token endpoint) and the
owned launches of tests/clinical; end-to-end tests share one stack (sandbox EHR + app on
loopback) whose app has a short FHIR read timeout, so timeout faults cost about a second.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.stackdb import app_tokens, expire_launches, launch_tokens  # noqa: F401 (re-exported)
from tests.clinical.conftest import fhir_json, make_launch, own  # noqa: F401 (fixtures)
from tests.smartapp.conftest import (  # noqa: F401 (fixtures)
    ISS,
    TOKEN,
    app_keys,
    app_private_jwks,
    ehr_keys,
    mocked,
    smart_ehr,
    token_body,
)
from tests.stack import Browser, Stack, start_stack

# Canary values: if any of them shows up in a page or a log line, a secret leaked.
ACCESS = "at-canary-7f3a9e"
REFRESH = "rt-canary-5b21cd"
CODE = "code-canary-91d0"
CLIENT_SECRET = "test-secret"  # the shared `ehr` fixture's secret
CANARIES = (ACCESS, REFRESH, CODE, CLIENT_SECRET)
BEARER = re.compile(r"(?i)\b(bearer|basic) (?!token\b)[A-Za-z0-9._~+/=-]{8,}")
# A JWT: a base64url JSON header ("eyJ…"), a dot, more base64url. A random launch handle may
# contain "eyJ" by chance (1 in ~10,000 handles), which the bare substring check took for a leak.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
FHIR_READ_TIMEOUT = "1.0"  # seconds, for the e2e app: a `slow_ms` fault of 2500 is a timeout
REFRESH_BACKOFF = 1  # seconds; short, so a test can outwait it


def assert_no_secrets(*texts: str, extra: Iterable[str] = ()) -> None:
    """No canary, no bearer credential and no JWT in any of `texts`."""
    joined = "\n".join(texts)
    for secret in (*CANARIES, *extra):
        if secret:
            assert secret not in joined, f"secret leaked: {secret[:6]}…"
    assert not BEARER.search(joined), "a bearer credential leaked"
    assert not JWT.search(joined), "a JWT leaked"  # an id_token, a client assertion


@pytest.fixture(autouse=True)
def _log_everything(caplog):
    caplog.set_level(logging.DEBUG)


def authorize_params(response) -> dict[str, str]:
    """The query of the authorize redirect the app answered with."""
    assert response.status_code == 302, response.content[:300]
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def start_ehr_launch(client, launch: str = "L1") -> dict[str, str]:
    return authorize_params(client.get("/launch", {"iss": ISS, "launch": launch}))


def good_token(keys, nonce: str | None, **overrides):
    """A conformant token response with canary tokens and a valid id_token for `nonce`."""
    values = {"access_token": ACCESS, "refresh_token": REFRESH, "id_token": keys.id_token(nonce=nonce)}
    values.update(overrides)
    return token_body(**values)


# --- End to end -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rstack(tmp_path_factory) -> Stack:
    """One stack for the battery's e2e tests (started on first use, always stopped)."""
    env = {
        "SMART_HTTP_READ_TIMEOUT": FHIR_READ_TIMEOUT,
        "SMART_REFRESH_BACKOFF_SECONDS": str(REFRESH_BACKOFF),
    }
    with start_stack(tmp_path_factory.mktemp("reliability"), app_env=env) as running:
        yield running


@pytest.fixture
def rbrowser(rstack) -> Browser:
    rstack.sandbox.reset_faults()
    return Browser(rstack)


class LeakWatch:
    """Collects the stack's secrets over a test, then checks pages and the app's log for them."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.secrets: set[str] = {stack.client_secret}

    def collect(self) -> None:
        self.secrets |= app_tokens(self.stack)

    def check(self, *texts: str) -> None:
        self.collect()
        log = self.stack.app.log_path.read_text(errors="replace")
        joined = "\n".join((*texts, log))
        for secret in self.secrets:
            assert secret not in joined, f"secret leaked: {secret[:4]}…"
        assert not BEARER.search(joined), "a bearer credential leaked"
        assert not JWT.search(joined), "a JWT leaked"


@pytest.fixture
def leaks(rstack) -> LeakWatch:
    return LeakWatch(rstack)
