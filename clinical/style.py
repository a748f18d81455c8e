"""SMART `smart_style_url` hints, reduced to a few validated CSS custom properties.

The style document comes from the EHR, but it ends up inside our page: only allow-listed keys
with strictly validated values survive (colours as #hex or rgb(), fonts from a fixed list, a
border radius in px), and colour pairs that would fail WCAG AA contrast are dropped.
Reference: https://hl7.org/fhir/smart-app-launch/app-launch.html#styling
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import requests
from django.conf import settings

from smartapp import cachepolicy, safety, transport

logger = logging.getLogger(__name__)

STYLE_TIMEOUT = (2.0, 2.0)
STYLE_MAX_BYTES = 32 * 1024
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


def _same_origin(url: str, fhir_base: str) -> bool:
    try:
        return bool(fhir_base) and transport.origin(url) == transport.origin(fhir_base)
    except ValueError:  # "https://[broken": not a URL; the rule refuses it next
        return False


def style_url_allowed(url: str, fhir_base: str) -> bool:
    """Fetchable under the outbound rule (smartapp.safety).

    On the FHIR server's own origin the URL is as trusted as the registered server itself;
    anywhere else it is a URL the EHR handed us, so every address of its host must be public
    (checked again, and pinned, when the transport connects).
    """
    try:
        safety.check_url(url, public_only=not _same_origin(url, fhir_base))
    except (safety.RefusedURL, ValueError):  # ValueError: urlsplit refuses it ("https://[broken")
        return False
    return True


def _cache_key(url: str) -> str:
    return "smart-style:" + hashlib.sha256(url.encode()).hexdigest()


def cached(url: str) -> dict[str, str] | None:
    return cachepolicy.get(cachepolicy.STYLE, _cache_key(url))


def fetch(url: str, session: requests.Session | None = None, *, fhir_base: str = "") -> dict[str, str]:
    """Fetch (without the access token, no redirects, size-capped, within SMART_STYLE_DEADLINE)
    and sanitise a style document; any failure is just no style."""
    try:
        reply = transport.fetch(
            "GET",
            url,
            headers={"Accept": "application/json"},
            limit=STYLE_MAX_BYTES,
            timeout=STYLE_TIMEOUT,
            deadline=settings.SMART_STYLE_DEADLINE,
            public_only=not _same_origin(url, fhir_base),
            session=session,
        )
    except (transport.OutboundError, transport.RefusedURL) as exc:
        logger.info("smart_style_url could not be used (%s)", type(exc).__name__)
        return {}
    if reply.status_code != 200:
        return {}
    try:
        return sanitize(reply.json())
    except ValueError:
        logger.info("smart_style_url could not be used (not JSON)")
        return {}


def store(url: str, props: dict[str, str]) -> None:
    cachepolicy.set(cachepolicy.STYLE, _cache_key(url), props, STYLE_CACHE_SECONDS if props else 300)
