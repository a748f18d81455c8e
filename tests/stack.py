"""The whole product on loopback for end-to-end tests: the sandbox EHR and the app, registered.

`start_stack(workdir)` starts the sandbox EHR on http://127.0.0.1:PORT and the app (gunicorn,
production-like settings) on http://localhost:PORT — two different sites, as an EHR and an app
are in the field — and registers each with the other. `Browser` drives the launch flows over
HTTP with a cookie jar that, like real browsers, treats loopback as a secure context.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from tests.app_server import AppServer, start_app
from tests.net import free_port
from tests.sandbox_server import SandboxServer, start_sandbox

CLIENT_ID = "smart-dashboard-e2e"
EHR_SLUG = "sandbox"
DEMO_PASSWORD = "demo"  # the sandbox's demo accounts (dr.smith, dr.jones, maria.garcia, ...)


@dataclass
class Stack:
    sandbox: SandboxServer
    app: AppServer
    client_id: str = CLIENT_ID
    slug: str = EHR_SLUG
    client_secret: str = ""

    def stop(self) -> None:
        self.app.stop()
        self.sandbox.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_stack(
    workdir: Path,
    auth_method: str = "client_secret_basic",
    client: dict | None = None,
    app_env: dict[str, str] | None = None,
    workers: int = 2,
) -> Stack:
    """Start and cross-register the sandbox EHR and the app; always stopped by `Stack.stop()`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    app_port = free_port()
    app_url = f"http://localhost:{app_port}"
    secret = secrets.token_urlsafe(24)
    registration = {
        "client_id": CLIENT_ID,
        "name": "SMART Dashboard",
        "redirect_uris": [f"{app_url}/callback"],
        "launch_url": f"{app_url}/launch",
    }
    if auth_method == "private_key_jwt":
        registration["jwks_url"] = f"{app_url}/.well-known/jwks.json"
    else:
        registration["client_secret"] = secret
    registration.update(client or {})
    sandbox = start_sandbox(workdir / "sandbox.sqlite3", [registration])
    try:
        env = dict(app_env or {})
        if auth_method == "private_key_jwt":
            env.setdefault("SMART_JWKS_FILE", str(workdir / "app-jwks.json"))
        app = start_app(workdir / "app.sqlite3", port=app_port, workers=workers, **env)
    except Exception:
        sandbox.stop()
        raise
    stack = Stack(sandbox=sandbox, app=app, client_secret=secret)
    try:
        if auth_method == "private_key_jwt":
            app.manage("generate_jwks", env["SMART_JWKS_FILE"], "--force")
        args = [
            "register_ehr", "--name", "Sandbox EHR", "--iss", sandbox.fhir_base, "--client-id", CLIENT_ID,
            "--auth-method", auth_method, "--frame-ancestor", sandbox.base_url, "--slug", EHR_SLUG,
        ]  # fmt: skip
        if auth_method != "private_key_jwt":
            args.append(f"--client-secret={secret}")  # a secret may start with "-"
        app.manage(*args)
    except Exception:
        stack.stop()
        raise
    return stack


_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Browser:
    """A scripted user agent for the launch flows (one cookie jar, like one browser profile)."""

    stack: Stack
    http: requests.Session = field(default_factory=requests.Session)
    history: list[requests.Response] = field(default_factory=list)

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        response = self.http.request(method, url, allow_redirects=False, timeout=30, **kwargs)
        # Browsers treat http://localhost and 127.0.0.1 as secure contexts and send Secure
        # cookies there; Python's cookie jar does not, so relax the flag for loopback only.
        for cookie in self.http.cookies:
            if cookie.domain in ("localhost.local", "localhost", "127.0.0.1"):
                cookie.secure = False
        self.history.append(response)
        return response

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.follow(self._send("GET", url, **kwargs))

    def post(self, url: str, data: dict, **kwargs) -> requests.Response:
        return self.follow(self._send("POST", url, data=data, **kwargs))

    def follow(self, response: requests.Response, limit: int = 15) -> requests.Response:
        """Follow redirects across both sites, keeping each hop for assertions."""
        while response.is_redirect and limit:
            limit -= 1
            response = self._send("GET", urljoin(response.url, response.headers["Location"]))
        return response

    def submit(self, page: requests.Response, data: dict) -> requests.Response:
        """Post the page's form (same URL) with its CSRF token."""
        token = _CSRF.search(page.text)
        assert token, f"no form on {page.url}"
        return self.post(page.url, {"csrfmiddlewaretoken": token.group(1), **data})

    def sandbox_login(self, username: str = "dr.smith") -> requests.Response:
        page = self.get(self.stack.sandbox.base_url + "/auth/login")
        return self.submit(page, {"username": username, "password": DEMO_PASSWORD, "next": "/ehr/"})

    def authorize_through(
        self, page: requests.Response, patient: str = "pat-garcia", untick: tuple[str, ...] = (),
        action: str = "approve", username: str = "dr.smith",
    ) -> requests.Response:  # fmt: skip
        """Answer the sandbox's login, patient-picker and consent pages until it sends us back."""
        for _ in range(6):
            if (
                urlsplit(page.url).port != urlsplit(self.stack.sandbox.base_url).port
                or page.status_code != 200
            ):
                return page
            if 'name="password"' in page.text:
                page = self.submit(page, {"username": username, "password": DEMO_PASSWORD})
            elif 'name="patient"' in page.text:
                page = self.submit(page, {"patient": patient})
            elif 'name="scope"' in page.text:
                offered = re.findall(r'name="scope" value="([^"]+)"', page.text)
                page = self.submit(page, {"action": action, "scope": [s for s in offered if s not in untick]})
            else:
                return page
        return page

    def standalone_launch(self, patient: str = "pat-garcia", **kwargs) -> requests.Response:
        """From the app's standalone entry through the sandbox's pages to the app's landing page."""
        first = self.get(f"{self.stack.app.base_url}/standalone/{self.stack.slug}/")
        return self.authorize_through(first, patient=patient, **kwargs)

    def ehr_launch(
        self, patient: str = "pat-chen", encounter: str = "", user: str = "Practitioner/prac-smith"
    ) -> requests.Response:
        """What the EHR's app tab does: open the app's launch URL with iss and a fresh launch token."""
        launch = self.stack.sandbox.create_launch(self.stack.client_id, patient, encounter, user)
        first = self.get(launch["launch_url"])
        return self.authorize_through(first, patient=patient)
