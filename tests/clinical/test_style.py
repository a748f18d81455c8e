from __future__ import annotations

import pytest

from clinical import style


def test_it_keeps_valid_hints_as_custom_properties():
    props = style.sanitize(
        {
            "color_background": "#FFF",
            "color_text": "rgb(20, 20, 20)",
            "color_highlight": "#0B5CAD",
            "font_family_heading": "'Segoe UI', Tahoma",
            "dim_border_radius": "8px",
            "color_modal_backdrop": "#000",
        }
    )
    assert props == {
        "--smart-bg": "#ffffff",
        "--smart-fg": "#141414",
        "--smart-accent": "#0b5cad",
        "--smart-heading-font": '"Segoe UI", Tahoma, sans-serif',
        "--smart-radius": "8px",
    }


@pytest.mark.parametrize(
    "hostile",
    [
        {"color_background": "#fff;background:url(//evil)"},
        {"color_background": "rgb(300, 0, 0)"},
        {"color_background": "var(--x)"},
        {"color_text": "</style><script>alert(1)</script>"},
        {"font_family_body": "Comic Sans; } * { display:none"},
        {"font_family_body": ["Arial"]},
        {"dim_border_radius": "4px; color: red"},
        {"dim_border_radius": "999px"},
        {"dim_border_radius": "calc(1px)"},
        {"unknown_key": "#ffffff"},
        "not a dict",
    ],
)
def test_it_drops_hostile_or_unknown_hints(hostile):
    assert style.sanitize(hostile) == {}


def test_it_drops_colour_pairs_below_wcag_aa_contrast():
    props = style.sanitize(
        {"color_background": "#ffffff", "color_text": "#eeeeee", "color_highlight": "#ffff00"}
    )
    assert props == {}
    assert round(style.contrast("#000000", "#ffffff"), 1) == 21.0


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://cdn.ehr.example.org/style.json", True),
        ("http://localhost:8001/sandbox/style.json", True),  # the FHIR server's own origin
        ("http://other.example.org/style.json", False),
        ("file:///etc/passwd", False),
        ("https://user:pw@ehr.example.org/s.json", False),
        ("https://169.254.169.254/latest/meta-data", False),  # cloud metadata address
        ("https://10.0.0.5/style.json", False),
        ("https://[broken/style.json", False),  # urlsplit raises: not a 500, just no style
        ("https://ehr.example.org:99999/style.json", False),  # port out of range
    ],
)
def test_it_fetches_style_only_from_allowed_urls(url, allowed):
    assert style.style_url_allowed(url, "http://localhost:8001/sandbox/fhir") is allowed
