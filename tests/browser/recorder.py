"""What a browser profile did: every request and response, checked for leaks and crashes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

# Query/fragment keys that would put a credential in a URL (browser history, logs, Referer).
SECRET_PARAMS = {"access_token", "refresh_token", "id_token", "token", "client_secret", "client_assertion"}
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")


@dataclass
class Seen:
    method: str
    url: str
    referer: str = ""
    status: int | None = None


@dataclass
class Recorder:
    """A BrowserContext plus the log of its traffic; `final` is the page screenshotted at the end."""

    context: object
    app_origin: str
    requests: list[Seen] = field(default_factory=list)
    responses: list[Seen] = field(default_factory=list)
    final: object | None = None
    console: list[str] = field(default_factory=list)
    expected_console: list[str] = field(default_factory=list)  # substrings a test expects to see

    def __post_init__(self) -> None:
        self.context.on("request", self._on_request)
        self.context.on("response", self._on_response)
        self.context.on("console", self._on_console)
        self.context.on("weberror", lambda error: self.console.append(f"pageerror: {error.error}"))

    def _on_console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def _on_request(self, request) -> None:
        headers = request.headers
        self.requests.append(Seen(request.method, request.url, headers.get("referer", "")))

    def _on_response(self, response) -> None:
        self.responses.append(Seen(response.request.method, response.url, status=response.status))

    def new_page(self):
        page = self.context.new_page()
        self.final = page
        return page

    def app_urls(self) -> list[str]:
        return [r.url for r in self.requests if _origin(r.url) == self.app_origin]

    def statuses(self, path: str) -> list[int]:
        """Statuses of the app's responses for `path` (exact path, any query)."""
        return [
            r.status
            for r in self.responses
            if _origin(r.url) == self.app_origin and urlsplit(r.url).path == path
        ]

    def server_errors(self) -> list[str]:
        return [f"{r.status} {r.method} {r.url}" for r in self.responses if (r.status or 0) >= 500]

    def screenshot(self, path: Path) -> list[Path]:
        """The final page as `path`; any other open tab as `<stem>-tab<N>.png` beside it."""
        pages = [p for p in self.context.pages if not p.is_closed()]
        if not pages:
            return []
        final = self.final if self.final in pages else pages[-1]
        saved = [path]
        final.screenshot(path=str(path), full_page=True)
        for number, page in enumerate(pages, start=1):
            if page is not final:
                other = path.with_name(f"{path.stem}-tab{number}{path.suffix}")
                page.screenshot(path=str(other), full_page=True)
                saved.append(other)
        return saved

    def assert_clean(self) -> None:
        """No 5xx anywhere; no token in any app URL; an auth code only on the /callback hop."""
        crashed = self.server_errors()
        assert not crashed, f"server errors seen by the browser: {crashed}"
        broken = [
            line
            for line in self.console
            if ("pageerror" in line or "Content Security Policy" in line)
            and not any(expected in line for expected in self.expected_console)
        ]
        assert not broken, f"script errors or CSP violations: {broken}"

        codes: set[str] = set()
        for url in self.app_urls():
            parts = urlsplit(url)
            params = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(
                parts.fragment, keep_blank_values=True
            )
            for key, value in params:
                assert key not in SECRET_PARAMS, f"{key} in an app URL: {parts.path}"
                if key == "code":
                    assert parts.path == "/callback", f"authorization code in an app URL: {parts.path}"
                    codes.add(value)
            assert not JWT.search(url), f"a JWT in an app URL: {parts.path}"
        # The code may travel only on its own /callback hop: never in another URL or a Referer.
        for seen in self.requests:
            hop = _origin(seen.url) == self.app_origin and urlsplit(seen.url).path == "/callback"
            for code in codes:
                where = urlsplit(seen.url).path
                assert hop or code not in seen.url, f"authorization code leaked into {where}"
                assert code not in seen.referer, f"authorization code in a Referer to {_origin(seen.url)}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
