"""Drive the sandbox's authorization flow over HTTP like a browser and an app would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

APP = "dashboard"
SECRET = "app-secret"
REDIRECT = "http://localhost:8765/callback"
STANDALONE_SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(resp: requests.Response) -> dict[str, str]:
    """The parameters of a redirect back to the app."""
    assert resp.status_code == 302, resp.text[:500]
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def auth_params(sandbox, client_id: str = APP, scope: str = STANDALONE_SCOPE, **overrides) -> dict:
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": secrets.token_urlsafe(16),
        "aud": sandbox.fhir_base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n-" + secrets.token_hex(4),
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def login(
    browser: requests.Session, sandbox, username: str = "dr.smith", password: str = "demo"
) -> requests.Response:
    page = browser.get(sandbox.base_url + "/auth/login")
    return browser.post(
        sandbox.base_url + "/auth/login",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": csrf(page.text),
            "next": "/ehr/",
        },
        allow_redirects=False,
    )


def standalone(
    sandbox,
    client_id: str = APP,
    scope: str = STANDALONE_SCOPE,
    username: str = "dr.smith",
    patient: str = "pat-garcia",
    action: str = "approve",
    untick: tuple[str, ...] = (),
    verifier: str | None = None,
    challenge: str | None = None,
) -> tuple[dict[str, str], str, dict]:
    """A full standalone launch: login, patient picker, consent.

    Returns (redirect params, verifier, authorize request params).
    """
    if verifier is None:
        verifier, challenge = pkce()
    params = auth_params(sandbox, client_id, scope, code_challenge=challenge)
    browser = requests.Session()
    login(browser, sandbox, username)
    resp = browser.get(sandbox.authorize_url, params=params, allow_redirects=False)
    for _ in range(6):
        if resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT):
            return query(resp), verifier, params
        if resp.status_code == 302:
            resp = browser.get(sandbox.base_url + resp.headers["Location"], allow_redirects=False)
            continue
        assert resp.status_code == 200, resp.text[:500]
        token = csrf(resp.text)
        if 'name="patient"' in resp.text:
            resp = browser.post(
                resp.url, data={"patient": patient, "csrfmiddlewaretoken": token}, allow_redirects=False
            )
        else:
            offered = re.findall(r'name="scope" value="([^"]+)"', resp.text)
            data = {
                "action": action,
                "csrfmiddlewaretoken": token,
                "scope": [s for s in offered if s not in untick],
            }
            resp = browser.post(resp.url, data=data, allow_redirects=False)
    raise AssertionError("authorization flow did not finish")


def basic(client_id: str = APP, secret: str = SECRET) -> tuple[str, str]:
    return (client_id, secret)


def exchange(
    sandbox, code: str, verifier: str, client_id: str = APP, secret: str = SECRET, **extra
) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    data.update(extra)
    return requests.post(sandbox.token_url, data=data, auth=(client_id, secret), timeout=10)


def token_for(
    sandbox,
    scope: str = STANDALONE_SCOPE,
    patient: str = "pat-garcia",
    client_id: str = APP,
    secret: str = SECRET,
    username: str = "dr.smith",
) -> dict:
    """A complete standalone launch and code exchange: the token response."""
    params, verifier, _ = standalone(
        sandbox, client_id=client_id, scope=scope, patient=patient, username=username
    )
    resp = exchange(sandbox, params["code"], verifier, client_id=client_id, secret=secret)
    assert resp.status_code == 200, resp.text
    return resp.json()


def assertion(key, kid: str, alg: str, aud: str, client_id: str = "jwt-app", **claims) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "jti": uuid.uuid4().hex}
    body.update(claims)
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def fhir(sandbox, path: str, token: str, **params) -> requests.Response:
    return requests.get(
        f"{sandbox.fhir_base}/{path}",
        params=params or None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
