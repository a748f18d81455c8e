"""The measures the dashboard knows by LOINC code, with their units, precision and chart scales.

A measure is one property in one unit dimension: codes are grouped only when they mean the same
thing (eGFR per 1.73 m² is never creatinine clearance in mL/min). Unknown codes map to no
measure and are shown under their own name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings


@dataclass(frozen=True)
class MeasureDef:
    """One clinical measure: the LOINC codes that mean exactly it, its unit and display rules."""

    key: str
    name: str
    codes: frozenset[str]
    kind: str  # vital | lab
    group: str  # labs: Kidney, Electrolytes, ...; vitals: ""
    unit: str  # UCUM code the series is shown in
    decimals: int | None  # None: 3 significant digits
    scale: tuple[float, float] | None = None  # fixed clinical y-axis, widened to fit the data
    normal: tuple[float | None, float | None] | None = None  # adult band shaded on charts


Band = tuple[float | None, float | None]


def _vital(
    key: str,
    name: str,
    codes: set[str],
    unit: str,
    decimals: int,
    scale: tuple[float, float] | None = None,
    normal: Band | None = None,
) -> MeasureDef:
    return MeasureDef(key, name, frozenset(codes), "vital", "", unit, decimals, scale, normal)


def _lab(key: str, name: str, codes: set[str], group: str, unit: str, decimals: int | None) -> MeasureDef:
    return MeasureDef(key, name, frozenset(codes), "lab", group, unit, decimals)


# The shipped defaults (smartapp/settings.py), for a settings module without them (the sandbox's).
_DEFAULTS = {
    "CLINICAL_STALE_VITALS_DAYS": 365,
    "CLINICAL_STALE_LABS_DAYS": 365,
    "CLINICAL_HR_RANGE": ("50", "100"),
    "CLINICAL_RR_RANGE": ("12", "20"),
    "CLINICAL_SPO2_LOW": "92",
    "CLINICAL_FEVER_C": "38.0",
    "CLINICAL_HYPOTHERMIA_C": "35.0",
    "CLINICAL_BP_HIGH": ("140", "90"),
    "CLINICAL_BP_VERY_HIGH": ("180", "120"),
    "CLINICAL_SYSTOLIC_LOW": "90",
    "CLINICAL_MAP_LOW": "65",
}


def cutoff(name: str) -> tuple[Decimal, ...]:
    """A cut-off setting as exact Decimals, read now (tests override them with `settings`)."""
    value = getattr(settings, name, _DEFAULTS[name])
    values = value if isinstance(value, list | tuple) else (value,)
    return tuple(Decimal(str(v)) for v in values)


def _f(value: Decimal) -> float:
    return float(value)


def _vital_defs() -> tuple[MeasureDef, ...]:
    # Bands follow the configured cut-offs at start; normal_band() follows later overrides too.
    hr, rr = cutoff("CLINICAL_HR_RANGE"), cutoff("CLINICAL_RR_RANGE")
    bp_high = cutoff("CLINICAL_BP_HIGH")
    spo2_low, systolic_low = cutoff("CLINICAL_SPO2_LOW")[0], cutoff("CLINICAL_SYSTOLIC_LOW")[0]
    cold, fever = cutoff("CLINICAL_HYPOTHERMIA_C")[0], cutoff("CLINICAL_FEVER_C")[0]
    # Reference: https://hl7.org/fhir/R4/observation-vitalsigns.html (codes), LOINC for the rest
    return (
        _vital("bp", "Blood pressure", {"85354-9", "55284-4", "35094-2"}, "mm[Hg]", 0, (40, 200)),
        _vital("hr", "Heart rate", {"8867-4"}, "/min", 0, (40, 160), (_f(hr[0]), _f(hr[1]))),
        _vital("rr", "Respiratory rate", {"9279-1"}, "/min", 0, (5, 40), (_f(rr[0]), _f(rr[1]))),
        _vital("spo2", "SpO₂", {"59408-5", "2708-6"}, "%", 0, (80, 100), (_f(spo2_low), None)),
        _vital(
            "temp",
            "Temperature",
            {"8310-5"},
            "Cel",
            1,
            (35, 40),
            (_f(cold), _f(fever)),
        ),
        _vital("weight", "Weight", {"29463-7", "3141-9"}, "kg", 1),
        _vital("height", "Height", {"8302-2", "8306-3"}, "cm", 0),
        _vital("bmi", "BMI", {"39156-5"}, "kg/m2", 1),
        _vital("head", "Head circumference", {"9843-4", "8287-5"}, "cm", 1),
        # 0-10 numeric rating scales are whole numbers, charted on their own fixed scale.
        _vital("pain", "Pain (0\u201310)", {"72514-3", "38208-5"}, "{score}", 0, (0, 10)),
        _vital(
            "sys",
            "Systolic",
            {"8480-6"},
            "mm[Hg]",
            0,
            (40, 200),
            (_f(systolic_low), _f(bp_high[0])),
        ),
        _vital("dia", "Diastolic", {"8462-4"}, "mm[Hg]", 0, (40, 200), (None, _f(bp_high[1]))),
    )


# Decimals per test follow how labs commonly report them; unknown tests get 3 significant digits.
LABS: tuple[MeasureDef, ...] = (
    _lab("creatinine", "Creatinine", {"2160-0", "38483-4"}, "Kidney", "mg/dL", 2),
    # eGFR normalised to 1.73 m² (MDRD, CKD-EPI 2009 incl. race-specific, CKD-EPI 2021).
    _lab(
        "egfr",
        "eGFR",
        {"33914-3", "48642-3", "48643-1", "50044-7", "62238-1", "88293-6", "88294-4", "98979-8"},
        "Kidney",
        "mL/min/{1.73_m2}",
        0,
    ),
    # Measured 24-hour creatinine clearance, mL/min: never on the eGFR series.
    _lab("creatinine_clearance", "Creatinine clearance", {"2164-2"}, "Kidney", "mL/min", 0),
    _lab("bun", "BUN", {"3094-0", "6299-2"}, "Kidney", "mg/dL", 0),
    _lab("uacr", "Urine albumin/creatinine", {"9318-7", "14959-1"}, "Kidney", "mg/g", 0),
    _lab("sodium", "Sodium", {"2951-2", "2947-0"}, "Electrolytes", "mmol/L", 0),
    _lab("potassium", "Potassium", {"2823-3", "6298-4"}, "Electrolytes", "mmol/L", 1),
    _lab("chloride", "Chloride", {"2075-0", "2069-3"}, "Electrolytes", "mmol/L", 0),
    _lab("co2", "CO₂ (bicarbonate)", {"2028-9", "20565-8"}, "Electrolytes", "mmol/L", 0),
    _lab("calcium", "Calcium", {"17861-6", "49765-1"}, "Electrolytes", "mg/dL", 1),
    _lab("glucose", "Glucose", {"2345-7", "2339-0"}, "Chemistry", "mg/dL", 0),
    _lab("hba1c", "HbA1c", {"4548-4", "17856-6"}, "Diabetes", "%", 1),
    _lab("cholesterol", "Total cholesterol", {"2093-3"}, "Lipids", "mg/dL", 0),
    _lab("ldl", "LDL", {"13457-7", "18262-6", "2089-1"}, "Lipids", "mg/dL", 0),
    _lab("hdl", "HDL", {"2085-9"}, "Lipids", "mg/dL", 0),
    _lab("triglycerides", "Triglycerides", {"2571-8"}, "Lipids", "mg/dL", 0),
    _lab("wbc", "WBC", {"6690-2", "26464-8"}, "Hematology", "10*3/uL", 1),
    _lab("rbc", "RBC", {"789-8", "26453-1"}, "Hematology", "10*6/uL", 2),
    _lab("hemoglobin", "Hemoglobin", {"718-7"}, "Hematology", "g/dL", 1),
    _lab("hematocrit", "Hematocrit", {"4544-3"}, "Hematology", "%", 1),
    _lab("platelets", "Platelets", {"777-3", "26515-7"}, "Hematology", "10*3/uL", 0),
    _lab("mcv", "MCV", {"787-2"}, "Hematology", "fL", 0),
    _lab("mch", "MCH", {"785-6"}, "Hematology", "pg", 1),
    _lab("mchc", "MCHC", {"786-4"}, "Hematology", "g/dL", 1),
    _lab("rdw", "RDW", {"788-0", "21000-5"}, "Hematology", "%", 1),
    _lab("tsh", "TSH", {"3016-3", "11580-8"}, "Thyroid", "m[IU]/L", 2),
    _lab("free_t4", "Free T4", {"3024-7"}, "Thyroid", "ng/dL", 2),
    _lab("alt", "ALT", {"1742-6"}, "Liver", "U/L", 0),
    _lab("ast", "AST", {"1920-8"}, "Liver", "U/L", 0),
    _lab("alp", "Alkaline phosphatase", {"6768-6"}, "Liver", "U/L", 0),
    _lab("bilirubin", "Bilirubin", {"1975-2"}, "Liver", "mg/dL", 1),
    _lab("albumin", "Albumin", {"1751-7"}, "Liver", "g/dL", 1),
    _lab("total_protein", "Total protein", {"2885-2"}, "Liver", "g/dL", 1),
    _lab("lead", "Lead (blood)", {"5671-3", "77307-7"}, "Chemistry", "ug/dL", 1),
    _lab("urine_sg", "Specific gravity", {"5811-5", "2965-2"}, "Urinalysis", "1", 3),
    _lab("urine_ph", "Urine pH", {"5803-2", "2756-5"}, "Urinalysis", "[pH]", 1),
)

VITALS: tuple[MeasureDef, ...] = tuple(m for m in _vital_defs() if m.key not in ("sys", "dia"))
MEASURES: tuple[MeasureDef, ...] = (*_vital_defs(), *LABS)
_BY_CODE: dict[str, MeasureDef] = {code: m for m in MEASURES for code in m.codes}
_BY_KEY: dict[str, MeasureDef] = {m.key: m for m in MEASURES}


def measure_for(codes: Iterable[str]) -> MeasureDef | None:
    """The measure these LOINC codes mean; None when none is known or they name different ones.

    Codes may be bare ("8867-4") or system-qualified ("http://loinc.org|8867-4").
    """
    found = {_BY_CODE.get(code.rpartition("|")[2]) for code in codes if code}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def measure_by_key(key: str) -> MeasureDef | None:
    return _BY_KEY.get(key)


def normal_band(measure: MeasureDef) -> Band | None:
    """The chart's shaded band under the current settings (MeasureDef.normal is taken at start)."""
    fresh = {m.key: m for m in _vital_defs()}.get(measure.key)
    return fresh.normal if fresh else measure.normal
