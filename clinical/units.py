"""UCUM units as clinicians read them, and the few conversions the dashboard needs, in Decimal.

A small explicit table, not a UCUM library: the only pure-Python UCUM converter (ucumvert) maps
UCUM onto pint, which computes in floats and brings pint and lark along, for the handful of
conversions a vital-signs series needs (lb/oz/g ↔ kg, in/ft/m ↔ cm, °F/K ↔ °C). The factors here
are exact by definition (1 lb = 0.45359237 kg, 1 in = 2.54 cm). Lab units are never converted:
mg/dL ↔ µmol/L needs the analyte's molar mass, and mL/min ↔ mL/min/1.73 m² the patient's body
surface area, so those stay separate series.
Reference: https://ucum.org/ucum (UCUM specification)
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from functools import lru_cache

# What a clinician reads for whole UCUM codes that the piecewise rules below would not get right.
_WHOLE: dict[str, str] = {
    "1": "",
    "{score}": "",
    "Cel": "°C",
    "[degF]": "°F",
    "K": "K",
    "mm[Hg]": "mmHg",
    "kg/m2": "kg/m²",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
    "mL/min/1.73m2": "mL/min/1.73 m²",
    "mL/min/1.73.m2": "mL/min/1.73 m²",
    "[pH]": "pH",
    "/min": "/min",
    "%": "%",
}
# Bracketed UCUM atoms with a common written form.
_ATOMS: dict[str, str] = {
    "[lb_av]": "lb",
    "[oz_av]": "oz",
    "[in_i]": "in",
    "[ft_i]": "ft",
    "[degF]": "°F",
    "[pH]": "pH",
    "[iU]": "IU",
    "[IU]": "IU",
    "[HPF]": "HPF",
    "[LPF]": "LPF",
    "[ppm]": "ppm",
    "mm[Hg]": "mmHg",
    "cm[H2O]": "cmH₂O",
}
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_POWER_OF_TEN = re.compile(r"10\*(-?\d+)|10\^(-?\d+)")
# A lower-case u is UCUM's micro prefix only before a unit atom.
_MICRO = re.compile(r"(?<![A-Za-z])u(?=(?:g|L|l|mol|m|U|IU|\[IU\]|\[iU\]|kat|eq|Eq)\b)")
_SQUARE = re.compile(r"(?<=[A-Za-z])2\b")
_ANNOTATION = re.compile(r"\{[^{}]*\}")
# Codes that mean the same unit (UCUM annotations are unit 1; EHRs also put plain text in `code`).
# {1.73_m2} is kept: mL/min/{1.73_m2} is a different quantity from mL/min, whatever UCUM says.
_ALIASES: dict[str, str] = {
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "oz": "[oz_av]",
    "in": "[in_i]",
    "inch": "[in_i]",
    "ft": "[ft_i]",
    "degF": "[degF]",
    "°F": "[degF]",
    "F": "[degF]",
    "degC": "Cel",
    "°C": "Cel",
    "C": "Cel",
    "mmHg": "mm[Hg]",
    "kg/m²": "kg/m2",
    "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "mL/min/1.73.m2": "mL/min/{1.73_m2}",
    "mL/min/1.73 m2": "mL/min/{1.73_m2}",
    "mL/min/1.73 m²": "mL/min/{1.73_m2}",
    "mIU/L": "m[IU]/L",
    "uIU/mL": "m[IU]/L",  # µIU/mL = mIU/L exactly
    "u[IU]/mL": "m[IU]/L",
}
_KEPT_ANNOTATIONS = ("{1.73_m2}",)

# (dimension, factor to the dimension's base unit): mass in kg, length in cm.
_LINEAR: dict[str, tuple[str, Decimal]] = {
    "kg": ("mass", Decimal(1)),
    "g": ("mass", Decimal("0.001")),
    "[lb_av]": ("mass", Decimal("0.45359237")),
    "[oz_av]": ("mass", Decimal("0.028349523125")),  # 1/16 lb, exact
    "cm": ("length", Decimal(1)),
    "m": ("length", Decimal(100)),
    "mm": ("length", Decimal("0.1")),
    "[in_i]": ("length", Decimal("2.54")),
    "[ft_i]": ("length", Decimal("30.48")),
}
_TEMPERATURES = {"Cel", "[degF]", "K"}


def plain_number(value: Decimal) -> str:
    """A Decimal as text: never exponent notation (1E+2 is "100"), never a negative zero."""
    if value == 0:
        value = abs(value)
    return format(value, "f")


@lru_cache(maxsize=1024)  # pure, and asked thousands of times per page for a handful of units
def unit_code(code: str | None, unit: str | None = None) -> str:
    """The UCUM code of a Quantity: its `code`, else a `unit` text recognised as one; '' if none.

    Plain-text spellings EHRs send (lbs, degF, mmHg) become their UCUM code; count annotations
    ({beats}/min) are dropped because they do not change the unit.
    """
    raw = (code or "").strip() or (unit or "").strip()
    raw = _ALIASES.get(raw, raw)
    if "{" in raw and raw not in _KEPT_ANNOTATIONS and not any(k in raw for k in _KEPT_ANNOTATIONS):
        stripped = _ANNOTATION.sub("", raw)
        raw = stripped if stripped not in ("", "/") else ("1" if raw.startswith("{") else raw)
    return raw


@lru_cache(maxsize=1024)
def human_unit(code: str | None, unit: str | None = None) -> str:
    """What a clinician reads for a UCUM code (or, without one, the Quantity's unit text).

    Unknown units pass through unchanged; annotations ({score}, {beats}) are dropped.
    """
    raw = (code or "").strip()
    text = (unit or "").strip()
    if not raw:
        raw = text
    if raw in _WHOLE:
        return _WHOLE[raw]
    if raw in _ALIASES and _ALIASES[raw] in _WHOLE:
        return _WHOLE[_ALIASES[raw]]
    shown = raw.replace("{1.73_m2}", "1.73 m²")
    shown = _ANNOTATION.sub("", shown)
    for atom, written in _ATOMS.items():
        shown = shown.replace(atom, written)
    shown = _POWER_OF_TEN.sub(lambda m: "×10" + (m.group(1) or m.group(2)).translate(_SUPERSCRIPT), shown)
    shown = _MICRO.sub("µ", shown)
    shown = _SQUARE.sub("²", shown)
    if shown in ("1", "/"):
        return ""
    if "[" in shown and text and text != raw:
        return text  # an odd UCUM atom: the sender's own words read better than brackets
    return shown


def convert(value: Decimal, from_code: str, to_code: str) -> Decimal | None:
    """`value` in `from_code` expressed in `to_code`; None when the units are not interconvertible."""
    source, target = unit_code(from_code), unit_code(to_code)
    if source == target:
        return value
    if source in _LINEAR and target in _LINEAR:
        (dim_from, f_from), (dim_to, f_to) = _LINEAR[source], _LINEAR[target]
        if dim_from != dim_to:
            return None
        with localcontext() as ctx:
            ctx.prec = 34
            return value * f_from / f_to
    if source in _TEMPERATURES and target in _TEMPERATURES:
        with localcontext() as ctx:
            ctx.prec = 34
            celsius = {
                "Cel": value,
                "[degF]": (value - 32) * 5 / 9,
                "K": value - Decimal("273.15"),
            }[source]
            return {"Cel": celsius, "[degF]": celsius * 9 / 5 + 32, "K": celsius + Decimal("273.15")}[target]
    return None
