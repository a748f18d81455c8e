"""SMART `smart_style_url` hints, reduced to a few validated CSS custom properties.

The style document comes from the EHR, but it ends up inside our page: only allow-listed keys
with strictly validated values survive (colours as #hex or rgb(), fonts from a fixed list, a
border radius in px), and colour pairs that would fail WCAG AA contrast are dropped.
Reference: https://hl7.org/fhir/smart-app-launch/app-launch.html#styling
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from smartapp import cachepolicy

logger = logging.getLogger(__name__)

STYLE_TIMEOUT = (2.0, 2.0)
STYLE_MAX_BYTES = 32 * 1024
STYLE_DEADLINE = 3.0  # seconds for the whole download
STYLE_CACHE_SECONDS = 3600
_HEX_RE = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGB_RE = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")
_PX_RE = re.compile(r"^(\d{1,2})(\.\d{1,2})?px$")
FONTS = {
    "system-ui": "system-ui",
    "arial": "Arial",
    "helvetica": "Helvetica",
    "verdana": "Verdana",
    "tahoma": "Tahoma",
    "segoe ui": '"Segoe UI"',
    "roboto": "Roboto",
    "open sans": '"Open Sans"',
    "georgia": "Georgia",
    "times new roman": '"Times New Roman"',
    "sans-serif": "sans-serif",
    "serif": "serif",
}
COLOR_KEYS = {
    "color_background": "--smart-bg",
    "color_text": "--smart-fg",
    "color_highlight": "--smart-accent",
    "color_error": "--smart-danger",
}


def color(value: Any) -> str | None:
    """A #rrggbb string for a valid #hex or rgb() colour, else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    match = _HEX_RE.match(value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return "#" + digits.lower()
    match = _RGB_RE.match(value)
    if match and all(int(g) <= 255 for g in match.groups()):
        return "#" + "".join(f"{int(g):02x}" for g in match.groups())
    return None


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio. Reference: https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio"""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def font_stack(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 200:
        return None
    names = [n.strip().strip("'\"").lower() for n in value.split(",")]
    kept = [FONTS[n] for n in names if n in FONTS]
    if not kept:
        return None
    if kept[-1] not in ("sans-serif", "serif"):
        kept.append("sans-serif")
    return ", ".join(dict.fromkeys(kept))


def sanitize(style: Any) -> dict[str, str]:
    """CSS custom properties from a style document; everything unknown or invalid is dropped."""
    if not isinstance(style, dict):
        return {}
    props: dict[str, str] = {}
    colors = {key: color(style.get(key)) for key in COLOR_KEYS}
    bg = colors["color_background"] or "#ffffff"
    fg = colors["color_text"] or "#1b1f24"
    if contrast(bg, fg) < 4.5:
        # An unreadable pair is worse than the EHR's look not matching: keep our defaults.
        colors["color_background"] = colors["color_text"] = None
        bg, fg = "#ffffff", "#1b1f24"
    for key in ("color_highlight", "color_error"):
        if colors[key] and contrast(colors[key], bg) < 4.5:
            colors[key] = None
    for key, prop in COLOR_KEYS.items():
        if colors[key]:
            props[prop] = colors[key]
    font = font_stack(style.get("font_family_body") or style.get("font_family"))
    if font:
        props["--smart-font"] = font
    heading = font_stack(style.get("font_family_heading"))
    if heading:
        props["--smart-heading-font"] = heading
    radius = style.get("dim_border_radius")
    if isinstance(radius, str) and _PX_RE.match(radius.strip()) and float(radius.strip()[:-2]) <= 24:
        props["--smart-radius"] = radius.strip()
    return props


def css_declarations(props: dict[str, str]) -> str:
    """`--a: b; --c: d` for a style attribute (values are already validated; Django escapes quotes)."""
    return "; ".join(f"{k}: {v}" for k, v in sorted(props.items()))


def _internal_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name, not a literal address
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def style_url_allowed(url: str, fhir_base: str) -> bool:
    """https (not to a literal internal address), or the FHIR server's own origin (the http sandbox)."""
    try:
        parts, base = urlsplit(url), urlsplit(fhir_base)
        port = parts.port  # raises for a port out of range
        if parts.username or parts.password or not parts.hostname:
            return False
        if parts.scheme == "https":
            return not _internal_ip(parts.hostname) or parts.hostname == base.hostname
        return parts.scheme == base.scheme and (parts.hostname, port) == (base.hostname, base.port)
    except ValueError:  # "https://[broken", a port out of range: not a URL to fetch
        return False


def _cache_key(url: str) -> str:
    return "smart-style:" + hashlib.sha256(url.encode()).hexdigest()


def cached(url: str) -> dict[str, str] | None:
    return cachepolicy.get(cachepolicy.STYLE, _cache_key(url))


def fetch(url: str, session: requests.Session | None = None) -> dict[str, str]:
    """Fetch (without the access token, no redirects, size-capped) and sanitise a style document."""
    getter = session or requests
    try:
        response = getter.get(
            url,
            headers={"Accept": "application/json"},
            timeout=STYLE_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
        if response.status_code != 200:
            return {}
        # A total deadline, not only per-read timeouts: a server trickling bytes must not hold a
        # request thread.
        deadline = time.monotonic() + STYLE_DEADLINE
        body = b""
        for chunk in response.iter_content(4096):
            body += chunk
            if len(body) > STYLE_MAX_BYTES or time.monotonic() > deadline:
                return {}
        return sanitize(json.loads(body))
    except (requests.RequestException, ValueError, RecursionError):
        logger.info("smart_style_url could not be used")
        return {}


def store(url: str, props: dict[str, str]) -> None:
    cachepolicy.set(cachepolicy.STYLE, _cache_key(url), props, STYLE_CACHE_SECONDS if props else 300)
