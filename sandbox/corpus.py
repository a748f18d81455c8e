"""Patients shaped like real-world FHIR data, which the tidy synthetic patients never show.

Each generator adds one patient's chart (Patient, Encounters, Observations, Conditions) to the
resource list, deterministically from the seed and the anchor (the data's "now"); each patient
has its own random stream, so adding one leaves the others unchanged. The shapes, and why each
matters, are listed in sandbox/README.md:

- `pat-synthea`: what the Synthea generator exports (unrounded decimals, UCUM annotations,
  SNOMED fully specified names, LOINC long names, no reference ranges, bare v3 class codes).
- `pat-ehrstyle`: what Epic and Oracle Health send (split and panel blood pressure, mixed
  units, string/coded/comparator values, critical flags, age- and sex-specific and text-only
  ranges, amended/corrected/preliminary/cancelled/entered-in-error results, partial onsets).
- `pat-child`: a 4-year-old, whose normal vitals are abnormal by adult rules.
"""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

from sandbox.codes import (
    ACT,
    COND_CAT,
    COND_CLIN,
    COND_VER,
    FHIR_BASE_TOKEN,
    ICD10,
    INTERP,
    LOINC,
    MRN,
    OBS_CAT,
    SNOMED,
    UCUM,
    V2_0074,
)

GENDER = "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
US_CORE_CAT = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# Epic publishes its local code systems as OIDs under its own root; Oracle Health as code sets.
EPIC_LAB = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.4"
EPIC_FLOWSHEET = "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679"
EPIC_ENC_TYPE = "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.30"
EPIC_MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
CERNER_CODESET_72 = "https://fhir.cerner.com/ec2458f2-1e24-41c8-b71b-0e701af7583d/codeSet/72"


def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def _cc(*codings: dict, text: str | None = None) -> dict:
    out: dict = {"coding": list(codings)}
    if text is not None:
        out["text"] = text
    return out


def _qty(value: float, unit: str, code: str | None = None, comparator: str | None = None) -> dict:
    out: dict = {"value": value, "unit": unit, "system": UCUM, "code": code or unit}
    if comparator:
        out["comparator"] = comparator
    return out


def _z(dt: datetime, millis: bool = False) -> str:
    text = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{dt.microsecond // 1000:03d}Z" if millis else "Z")


def _ref(rtype: str, rid: str, display: str | None = None) -> dict:
    out = {"reference": f"{rtype}/{rid}"}
    if display:
        out["display"] = display
    return out


def _interp(code: str) -> list[dict]:
    display = {
        "N": "Normal",
        "L": "Low",
        "H": "High",
        "LL": "Critical low",
        "HH": "Critical high",
        "A": "Abnormal",
    }[code]
    return [_cc(_coding(INTERP, code, display), text=display)]


def _mrn_identifier(system: str, value: str, text: str | None = None) -> dict:
    return {
        "use": "usual",
        "type": _cc(_coding(V2_0203, "MR", "Medical record number"), text=text),
        "system": system,
        "value": value,
    }


def generate(resources: list[dict], seed: int, anchor: datetime) -> None:
    """Append the corpus patients to `resources`."""
    for name, build in PATIENTS.items():
        rng = random.Random(f"{seed}:{name}")  # noqa: S311 - reproducible synthetic data
        build(resources, rng, anchor)


# --- pat-synthea -----------------------------------------------------------------------------

SYNTHEA_TZ = timezone(timedelta(hours=-5))  # Synthea writes local times with their offset

# code, LOINC long name (Synthea's display), UCUM unit
SYNTHEA_VITALS = {
    "weight": ("29463-7", "Body Weight", "kg"),
    "height": ("8302-2", "Body Height", "cm"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "hr": ("8867-4", "Heart rate", "/min"),
    "rr": ("9279-1", "Respiratory rate", "/min"),
    "pain": ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}"),
    "temp": ("8310-5", "Body temperature", "Cel"),
}
SYNTHEA_SPO2 = [
    _coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
    _coding(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
]
# code, long name, unit, value at the first draw, value at the last, sd: drifting linearly
SYNTHEA_CBC = [
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 7.4, 7.9, 1.2),
    ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.9, 3.9, 0.15),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 14.8, 11.4, 0.4),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 44.1, 34.6, 1.2),
    ("787-2", "MCV [Entitic volume] by Automated count", "fL", 89.0, 88.0, 2.5),
    ("785-6", "MCH [Entitic mass] by Automated count", "pg", 30.1, 29.4, 1.0),
    ("786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 33.8, 33.2, 0.7),
    ("21000-5", "Erythrocyte distribution width [Entitic volume] by Automated count", "fL", 42, 47, 2),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 262, 231, 35),
]
SYNTHEA_BMP = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 128, 146, 22),
    ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 14, 38, 2.5),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.5, 8.9, 0.3),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 140, 138, 1.8),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.2, 5.0, 0.25),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 103, 105, 2),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 26, 21, 1.5),
]
SYNTHEA_CMP_EXTRA = [
    ("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 7.1, 6.6, 0.3),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 4.3, 3.6, 0.2),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.7, 0.6, 0.15),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 78, 96, 12),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 27, 22, 5),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 24, 21, 4),
]
SYNTHEA_YEARLY = [
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 228, 171, 14),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 212, 168, 25),
    ("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", 142, 92, 10),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 38, 41, 4),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 2.1, 2.6, 0.6),
    ("14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine", "mg/g", 18, 410, 25),
]
SYNTHEA_A1C = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 7.9, 7.3, 0.45)
CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL")
EGFR = (
    "98979-8",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
    "Creatinine-based formula (CKD-EPI 2021)",
    "mL/min/{1.73_m2}",
)
# Not normalised to body surface area: a different measure, never one series with EGFR.
CREATININE_CLEARANCE = ("2164-2", "Creatinine renal clearance in 24 hour Urine and Serum or Plasma", "mL/min")

# SNOMED code, fully specified name, onset (years before the anchor), resolved after (days)
SYNTHEA_CONDITIONS = [
    ("162864005", "Body mass index 30+ - obesity (finding)", 15.2, None),
    ("15777000", "Prediabetes (finding)", 14.1, 1120),
    ("59621000", "Essential hypertension (disorder)", 12.3, None),
    ("44054006", "Diabetes mellitus type 2 (disorder)", 11.0, None),
    ("55822004", "Hyperlipidemia (disorder)", 10.8, None),
    ("40055000", "Chronic sinusitis (disorder)", 10.4, None),
    ("160903007", "Full-time employment (finding)", 9.9, None),
    ("302870006", "Hypertriglyceridemia (disorder)", 9.2, None),
    ("237602007", "Metabolic syndrome X (disorder)", 9.2, None),
    ("239873007", "Osteoarthritis of knee (disorder)", 8.1, None),
    ("90781000119102", "Microalbuminuria due to type 2 diabetes mellitus (disorder)", 7.3, None),
    ("431855005", "Chronic kidney disease stage 1 (disorder)", 7.0, 730),
    ("10509002", "Acute bronchitis (disorder)", 6.4, 21),
    ("127013003", "Disorder of kidney due to diabetes mellitus (disorder)", 6.2, None),
    ("278860009", "Chronic low back pain (finding)", 5.8, None),
    ("368581000119106", "Neuropathy due to type 2 diabetes mellitus (disorder)", 5.1, None),
    ("431856006", "Chronic kidney disease stage 2 (disorder)", 5.0, 900),
    ("73430006", "Sleep apnea (disorder)", 4.7, None),
    ("157141000119108", "Proteinuria due to type 2 diabetes mellitus (disorder)", 4.2, None),
    ("53741008", "Coronary arteriosclerosis (disorder)", 3.9, None),
    (
        "1551000119108",
        "Nonproliferative diabetic retinopathy due to type 2 diabetes mellitus (disorder)",
        3.1,
        None,
    ),
    ("444814009", "Viral sinusitis (disorder)", 2.9, 14),
    ("433144002", "Chronic kidney disease stage 3 (disorder)", 2.5, None),
    ("49436004", "Atrial fibrillation (disorder)", 2.0, None),
    ("271737000", "Anemia (disorder)", 1.6, None),
    ("195662009", "Acute viral pharyngitis (disorder)", 1.1, 10),
    ("73595000", "Stress (finding)", 0.9, None),
    ("314529007", "Medication review due (situation)", 0.05, None),
]


# Synthea's lab reports: the panel's LOINC code with its long name as display and as text.
SYNTHEA_REPORTS = {
    "cbc": ("58410-2", "CBC panel - Blood by Automated count"),
    "bmp": ("51990-0", "Basic metabolic panel - Blood"),
    "cmp": ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
    "lipid": ("57698-3", "Lipid Panel"),
}
SYNTHEA_LAB = "Organization?identifier=https://github.com/synthetichealth/synthea|b1ddf812-1fdd-3adf-b1d5-32cc8bd07ebb"


def _lab_category() -> list[dict]:
    return [_cc(_coding(V2_0074, "LAB", "Laboratory"))]


def _synthea_time(dt: datetime) -> str:
    return dt.astimezone(SYNTHEA_TZ).isoformat(timespec="seconds")


def _synthea(resources: list[dict], rng: random.Random, anchor: datetime) -> None:
    pid = "pat-synthea"

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def unrounded(value: float) -> float:
        # A value drawn this way has 15-17 significant digits; one that happens to be short
        # (e.g. 98.5) is nudged so every value really is unrounded.
        while len(repr(value).replace(".", "").lstrip("0-")) < 12:
            value += 1e-9
        return value

    birth = date(anchor.year - 66, 4, 18)
    resources.append(
        {
            "resourceType": "Patient",
            "id": pid,
            "extension": [
                {
                    "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                    "valueCode": "M",
                },
                {
                    "url": "http://synthetichealth.github.io/synthea/disability-adjusted-life-years",
                    "valueDecimal": unrounded(rng.uniform(1, 4)),
                },
                {
                    "url": "http://synthetichealth.github.io/synthea/quality-adjusted-life-years",
                    "valueDecimal": unrounded(rng.uniform(55, 62)),
                },
            ],
            "identifier": [
                {"system": "https://github.com/synthetichealth/synthea", "value": new_id()},
                {
                    "type": _cc(
                        _coding(V2_0203, "MR", "Medical Record Number"), text="Medical Record Number"
                    ),
                    "system": "http://hospital.smarthealthit.org",
                    "value": new_id(),
                },
                {
                    "type": _cc(
                        _coding(V2_0203, "SS", "Social Security Number"), text="Social Security Number"
                    ),
                    "system": "http://hl7.org/fhir/sid/us-ssn",
                    "value": "999-61-3843",
                },
            ],
            "name": [
                {
                    "use": "official",
                    "family": "Kuhlman481",
                    "given": ["Dwight645", "Elbert"],
                    "prefix": ["Mr."],
                }
            ],
            "telecom": [{"system": "phone", "value": "555-804-7716", "use": "home"}],
            "gender": "male",
            "birthDate": birth.isoformat(),
            "address": [
                {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                            "extension": [
                                {"url": "latitude", "valueDecimal": unrounded(42.2 + rng.random() / 10)},
                                {"url": "longitude", "valueDecimal": unrounded(-71.9 + rng.random() / 10)},
                            ],
                        }
                    ],
                    "line": ["869 Hane Camp Suite 89"],
                    "city": "Worcester",
                    "state": "MA",
                    "postalCode": "01606",
                    "country": "US",
                }
            ],
            "maritalStatus": _cc(
                _coding("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "Married"),
                text="Married",
            ),
            "multipleBirthBoolean": False,
            "communication": [
                {
                    "language": _cc(
                        _coding("urn:ietf:bcp:47", "en-US", "English (United States)"), text="English"
                    )
                }
            ],
        }
    )
    subject = _ref("Patient", pid)
    prac = _ref("Practitioner", "prac-patel", "Dr. Priya Patel")

    # Monthly visits over ten years; the first exactly ten years ago, the last ~a month ago.
    visits: list[tuple[str, datetime]] = []
    for m in range(120):
        start = anchor - timedelta(days=(120 - m) * 30.4375 - rng.randint(0, 5))
        start = start.replace(
            hour=13 + rng.randint(0, 7), minute=rng.randint(0, 59), second=rng.randint(0, 59)
        )
        eid = new_id()
        yearly = m % 12 == 0
        kind = (
            _coding(SNOMED, "185349003", "Encounter for check up (procedure)")
            if yearly
            else _coding(SNOMED, "390906007", "Follow-up encounter (procedure)")
        )
        end = start + timedelta(minutes=15 if not yearly else 30)
        resources.append(
            {
                "resourceType": "Encounter",
                "id": eid,
                "identifier": [
                    {"use": "official", "system": "https://github.com/synthetichealth/synthea", "value": eid}
                ],
                "status": "finished",
                "class": {"system": ACT, "code": "AMB"},
                "type": [{"coding": [kind]}],
                "subject": {**subject, "display": "Mr. Dwight645 Kuhlman481"},
                "participant": [
                    {
                        "type": [
                            _cc(_coding(PARTICIPATION, "PPRF", "primary performer"), text="primary performer")
                        ],
                        "period": {"start": _synthea_time(start), "end": _synthea_time(end)},
                        "individual": prac,
                    }
                ],
                "period": {"start": _synthea_time(start), "end": _synthea_time(end)},
                "location": [{"location": {"display": "WORCESTER PRIMARY CARE ASSOCIATES"}}],
                "serviceProvider": {"display": "WORCESTER PRIMARY CARE ASSOCIATES"},
            }
        )
        visits.append((eid, start))

    def obs(eid: str, when: datetime, category: str, code: list[dict], **value) -> None:
        resources.append(
            {
                "resourceType": "Observation",
                "id": new_id(),
                "status": "final",
                "category": [
                    {
                        "coding": [
                            _coding(
                                OBS_CAT,
                                category,
                                "Vital signs" if category == "vital-signs" else "Laboratory",
                            )
                        ]
                    }
                ],
                "code": {"coding": code},
                "subject": subject,
                "encounter": _ref("Encounter", eid),
                "effectiveDateTime": _synthea_time(when),
                "issued": when.astimezone(SYNTHEA_TZ).isoformat(timespec="milliseconds"),
                **value,
            }
        )

    def quantity(eid: str, when: datetime, category: str, spec: tuple, value: float) -> None:
        code, display, unit = spec[:3]
        obs(eid, when, category, [_coding(LOINC, code, display)], valueQuantity=_qty(unrounded(value), unit))

    height = unrounded(rng.uniform(174, 179))
    first, last = visits[0][1], visits[-1][1]

    def trend(start: float, end: float, when: datetime, power: float = 1.0) -> float:
        t = (when - first) / (last - first)
        return start + (end - start) * t**power

    for i, (eid, start) in enumerate(visits):
        when = start + timedelta(minutes=4)
        systolic = trend(131, 148, when) + rng.gauss(0, 7)
        diastolic = trend(83, 89, when) + rng.gauss(0, 4.5)
        obs(
            eid,
            when,
            "vital-signs",
            [_coding(LOINC, "85354-9", "Blood pressure panel with all children optional")],
            component=[
                {
                    "code": {"coding": [_coding(LOINC, "8462-4", "Diastolic Blood Pressure")]},
                    "valueQuantity": _qty(unrounded(diastolic), "mm[Hg]"),
                },
                {
                    "code": {"coding": [_coding(LOINC, "8480-6", "Systolic Blood Pressure")]},
                    "valueQuantity": _qty(unrounded(systolic), "mm[Hg]"),
                },
            ],
        )
        weight = trend(101, 92, when) + rng.gauss(0, 0.7)
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["height"], height)
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["weight"], weight)
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["bmi"], weight / (height / 100) ** 2)
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["hr"], rng.gauss(79, 6))
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["rr"], rng.gauss(15, 1.4))
        quantity(eid, when, "vital-signs", SYNTHEA_VITALS["pain"], rng.uniform(0, 4.5))
        obs(
            eid,
            when,
            "vital-signs",
            SYNTHEA_SPO2,
            valueQuantity=_qty(unrounded(min(rng.gauss(96.4, 1.1), 99.9)), "%"),
        )
        if i == 0:  # the only temperature: ten years old
            quantity(eid, when, "vital-signs", SYNTHEA_VITALS["temp"], rng.gauss(36.9, 0.2))

    # Labs every 3-6 months; kidney function falling from eGFR 142 to ~37.
    draws: list[tuple[str, datetime]] = []
    due = first
    for eid, start in visits:
        if start >= due:
            draws.append((eid, start + timedelta(minutes=25)))
            due = start + timedelta(days=rng.randint(90, 180))
    if draws[-1][0] != visits[-1][0]:
        eid, start = visits[-1]
        draws.append((eid, start + timedelta(minutes=25)))
    last_year = None
    def report(n: int, kind: str, eid: str, when: datetime, observations: list[dict]) -> None:
        # Synthea writes `urn:uuid:` references in its bundles; a server that loaded them answers
        # with `Observation/<id>`, as here. The id does not draw from `rng` (the rest stays put).
        code, display = SYNTHEA_REPORTS[kind]
        resources.append(
            {
                "resourceType": "DiagnosticReport",
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{pid}:{n}:{kind}")),
                "status": "final",
                "category": _lab_category(),
                "code": {"coding": [_coding(LOINC, code, display)], "text": display},
                "subject": subject,
                "encounter": _ref("Encounter", eid),
                "effectiveDateTime": _synthea_time(when),
                "issued": when.astimezone(SYNTHEA_TZ).isoformat(timespec="milliseconds"),
                "performer": [{"reference": SYNTHEA_LAB, "display": "WORCESTER PRIMARY CARE ASSOCIATES"}],
                "result": [
                    {"reference": f"Observation/{o['id']}", "display": o["code"]["coding"][0]["display"]}
                    for o in observations
                ],
            }
        )

    for n, (eid, when) in enumerate(draws):
        final = n == len(draws) - 1
        edge = final or n == 0  # the first and the last kidney values are the ones to quote
        mark = len(resources)
        for spec in SYNTHEA_CBC + SYNTHEA_BMP + [SYNTHEA_A1C]:
            *_, begin, end, sd = spec
            quantity(eid, when, "laboratory", spec, max(trend(begin, end, when) + rng.gauss(0, sd), 0.1))
        cbc = resources[mark : mark + len(SYNTHEA_CBC)]
        bmp = resources[mark + len(SYNTHEA_CBC) : mark + len(SYNTHEA_CBC) + len(SYNTHEA_BMP)]
        egfr = trend(142, 37, when, 1.4) + (rng.uniform(-0.4, 0.4) if edge else rng.gauss(0, 2.5))
        creatinine = trend(0.74, 2.27, when, 1.8) + (rng.uniform(-0.01, 0.01) if edge else rng.gauss(0, 0.05))
        quantity(eid, when, "laboratory", CREATININE, creatinine)
        bmp.append(resources[-1])
        quantity(eid, when, "laboratory", EGFR, egfr)
        bmp.append(resources[-1])  # in the metabolic panel, as Synthea lists it
        if (n % 3 == 0 and when > anchor - timedelta(days=6 * 365)) or final:
            quantity(eid, when, "laboratory", CREATININE_CLEARANCE, egfr * 1.36 * (1 + rng.gauss(0, 0.03)))
        report(n, "cbc", eid, when, cbc)
        if when.year != last_year:
            last_year = when.year
            mark = len(resources)
            for spec in SYNTHEA_CMP_EXTRA + SYNTHEA_YEARLY:
                *_, begin, end, sd = spec
                quantity(eid, when, "laboratory", spec, max(trend(begin, end, when) + rng.gauss(0, sd), 0.1))
            extra = resources[mark : mark + len(SYNTHEA_CMP_EXTRA)]
            lipids = resources[mark + len(SYNTHEA_CMP_EXTRA) : mark + len(SYNTHEA_CMP_EXTRA) + 4]
            report(n, "cmp", eid, when, bmp + extra)  # HbA1c, TSH, urine ratio, clearance: in none
            report(n, "lipid", eid, when, lipids)
        else:
            report(n, "bmp", eid, when, bmp)

    # Synthea exports each visit's note as a DiagnosticReport too, under LOINC note categories
    # (not LAB): the app's category=LAB search must leave it out.
    eid, start = visits[-1]
    note_code = [
        _coding(LOINC, "34117-2", "History and physical note"),
        _coding(LOINC, "51847-2", "Evaluation+Plan note"),
    ]
    note = "# Chief Complaint\nNo complaints.\n\n# Assessment and Plan\nChronic kidney disease stage 3."
    resources.append(
        {
            "resourceType": "DiagnosticReport",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{pid}:note")),
            "status": "final",
            "category": [{"coding": note_code}],
            "code": {"coding": note_code},
            "subject": subject,
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": _synthea_time(start),
            "issued": start.astimezone(SYNTHEA_TZ).isoformat(timespec="milliseconds"),
            "performer": [{"display": "Dr. Priya Patel"}],
            "presentedForm": [
                {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(note.encode()).decode(),
                }
            ],
        }
    )

    for code, fsn, years, resolved_after in SYNTHEA_CONDITIONS:
        onset = anchor - timedelta(days=years * 365.25)
        eid, _start = min(visits, key=lambda v: abs(v[1] - onset))
        in_window = onset >= first - timedelta(days=20)
        if in_window:
            onset = _start
        cond: dict = {
            "resourceType": "Condition",
            "id": new_id(),
            "clinicalStatus": _cc(_coding(COND_CLIN, "resolved" if resolved_after else "active")),
            "verificationStatus": _cc(_coding(COND_VER, "confirmed")),
            "category": [_cc(_coding(COND_CAT, "encounter-diagnosis", "Encounter Diagnosis"))],
            "code": {"coding": [_coding(SNOMED, code, fsn)]},
            "subject": subject,
            "onsetDateTime": _synthea_time(onset),
            "recordedDate": _synthea_time(onset),
        }
        if in_window:
            cond["encounter"] = _ref("Encounter", eid)
        if resolved_after:
            cond["abatementDateTime"] = _synthea_time(onset + timedelta(days=resolved_after))
        resources.append(cond)


# --- pat-ehrstyle ----------------------------------------------------------------------------


def _ehrstyle(resources: list[dict], rng: random.Random, anchor: datetime) -> None:
    pid = "pat-ehrstyle"
    alphabet = string.ascii_letters + string.digits

    def epic_id() -> str:
        return "e" + "".join(rng.choice(alphabet) for _ in range(40)) + "3"

    def cerner_id() -> str:
        return str(rng.randint(10**8, 10**9 - 1))

    resources.append(
        {
            "resourceType": "Patient",
            "id": pid,
            "extension": [
                {
                    "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                    "valueCode": "F",
                }
            ],
            "identifier": [
                {
                    "use": "usual",
                    "type": {"text": "EPI"},
                    "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0",
                    "value": "E5502",
                },
                _mrn_identifier(EPIC_MRN, "203713", text="MRN"),
            ],
            "active": True,
            "name": [
                {"use": "official", "text": "Carmen L Reyes", "family": "Reyes", "given": ["Carmen", "L"]},
                {"use": "usual", "text": "Carmen Reyes", "family": "Reyes", "given": ["Carmen"]},
            ],
            "telecom": [
                {"system": "phone", "value": "217-555-0188", "use": "home"},
                {"system": "email", "value": "carmen.reyes@example.org", "rank": 1},
            ],
            "gender": "female",
            "birthDate": date(anchor.year - 58, 9, 3).isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": ["4410 Oak Hollow Rd"],
                    "city": "Springfield",
                    "state": "IL",
                    "postalCode": "62704",
                }
            ],
            "generalPractitioner": [_ref("Practitioner", "prac-jones", "David Jones, MD")],
        }
    )
    subject = _ref("Patient", pid, "Reyes, Carmen L")
    jones = _ref("Practitioner", "prac-jones", "David Jones, MD")

    def encounter(
        cls: tuple[str, str], kind: tuple[str, str], start: datetime, end: datetime | None, **extra
    ) -> str:
        eid = epic_id()
        resources.append(
            {
                "resourceType": "Encounter",
                "id": eid,
                "identifier": [
                    {
                        "use": "usual",
                        "system": "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8",
                        "value": str(rng.randint(10**6, 10**7)),
                    }
                ],
                "status": "finished" if end else "in-progress",
                "class": _coding(ACT, *cls),
                "type": [_cc(_coding(EPIC_ENC_TYPE, *kind), text=kind[1])],
                "subject": subject,
                "participant": [
                    {
                        "type": [_cc(_coding(PARTICIPATION, "ATND", "attender"), text="attender")],
                        "individual": jones,
                    }
                ],
                "period": {"start": _z(start)} | ({"end": _z(end)} if end else {}),
                **extra,
            }
        )
        return eid

    office = ("101", "Office Visit")
    # Ten office visits over three years, an ED visit last year, and an admission in progress.
    visits = []
    for n in range(10):
        start = anchor - timedelta(days=1100 - n * 105 + rng.randint(0, 10))
        start = start.replace(hour=14 + rng.randint(0, 6), minute=rng.choice([0, 20, 40]))
        visits.append((encounter(("AMB", "ambulatory"), office, start, start + timedelta(minutes=40)), start))
    ed_start = (anchor - timedelta(days=340)).replace(hour=3, minute=12)
    ed = encounter(
        ("EMER", "emergency"),
        ("102", "Emergency"),
        ed_start,
        ed_start + timedelta(hours=6, minutes=25),
        reasonCode=[_cc(text="Dysuria")],
    )
    admit = anchor - timedelta(days=2, hours=5, minutes=17)
    current = encounter(
        ("IMP", "inpatient encounter"),
        ("3", "Hospital Encounter"),
        admit,
        None,
        reasonCode=[_cc(_coding(SNOMED, "706882009", "Hypertensive urgency"), text="Hypertensive urgency")],
        location=[{"location": {"display": "SMC 5 WEST"}, "status": "active"}],
        hospitalization={
            "admitSource": _cc(
                _coding(
                    "http://terminology.hl7.org/CodeSystem/admit-source",
                    "emd",
                    "From accident/emergency department",
                ),
                text="Emergency Department",
            )
        },
        serviceProvider={"display": "Springfield Medical Center"},
    )

    vital_cat = [_cc(_coding(OBS_CAT, "vital-signs", "Vital Signs"), text="Vital Signs")]
    lab_cat = [_cc(_coding(OBS_CAT, "laboratory", "Laboratory"), text="Laboratory")]

    def obs(
        rid: str,
        eid: str,
        when: datetime,
        category: list,
        code: dict,
        status: str = "final",
        millis: bool = False,
        **fields,
    ) -> dict:
        res = {
            "resourceType": "Observation",
            "id": rid,
            "status": status,
            "category": category,
            "code": code,
            "subject": subject,
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": _z(when, millis),
            "issued": _z(when + timedelta(minutes=rng.randint(2, 50)), millis),
            **fields,
        }
        resources.append(res)
        return res

    def flowsheet(row: str, name: str, loinc: str, display: str) -> dict:
        return _cc(_coding(EPIC_FLOWSHEET, row, name), _coding(LOINC, loinc, display), text=name)

    def cerner(code: str, name: str, loinc: str, display: str) -> dict:
        return _cc(_coding(LOINC, loinc, display), _coding(CERNER_CODESET_72, code, name), text=name)

    spo2_code = _cc(
        _coding(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        _coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
        text="SpO2",
    )

    def spo2(
        eid: str, when: datetime, value: float, flow: float | None = None, fio2: float | None = None
    ) -> None:
        fields: dict = {"valueQuantity": _qty(value, "%")}
        if flow is not None:
            fields["component"] = [
                {
                    "code": _cc(_coding(LOINC, "3151-8", "Inhaled oxygen flow rate"), text="O2 Flow Rate"),
                    "valueQuantity": _qty(flow, "L/min"),
                },
                {
                    "code": _cc(_coding(LOINC, "3150-0", "Inhaled oxygen concentration"), text="FiO2"),
                    "valueQuantity": _qty(fio2, "%"),
                },
            ]
        obs(epic_id(), eid, when, vital_cat, spo2_code, **fields)

    def bp_panel(eid: str, when: datetime, sys_v: int, dia_v: int) -> None:
        obs(
            epic_id(),
            eid,
            when,
            vital_cat,
            flowsheet("5", "BP", "85354-9", "Blood pressure panel with all children optional"),
            component=[
                {
                    "code": _cc(
                        _coding(LOINC, "8480-6", "Systolic blood pressure"), text="Systolic blood pressure"
                    ),
                    "valueQuantity": _qty(sys_v, "mmHg", "mm[Hg]"),
                },
                {
                    "code": _cc(
                        _coding(LOINC, "8462-4", "Diastolic blood pressure"), text="Diastolic blood pressure"
                    ),
                    "valueQuantity": _qty(dia_v, "mmHg", "mm[Hg]"),
                },
            ],
        )

    def bp_split(eid: str, when: datetime, sys_v: int, dia_v: int) -> None:
        for code, name, loinc, display, v in (
            ("703501", "Systolic Blood Pressure", "8480-6", "Systolic blood pressure", sys_v),
            ("703516", "Diastolic Blood Pressure", "8462-4", "Diastolic blood pressure", dia_v),
        ):
            obs(
                cerner_id(),
                eid,
                when,
                vital_cat,
                cerner(code, name, loinc, display),
                millis=True,
                valueQuantity=_qty(v, "mmHg", "mm[Hg]"),
            )

    def simple_vital(eid: str, when: datetime, code: dict, quantity: dict, split: bool) -> None:
        obs(
            cerner_id() if split else epic_id(),
            eid,
            when,
            vital_cat,
            code,
            millis=split,
            valueQuantity=quantity,
        )

    hr_code = flowsheet("8", "Pulse", "8867-4", "Heart rate")
    rr_code = flowsheet("9", "Resp", "9279-1", "Respiratory rate")
    temp_code = flowsheet("6", "Temp", "8310-5", "Body temperature")
    weight_code = flowsheet("14", "Weight", "29463-7", "Body weight")
    height_code = flowsheet("11", "Height", "8302-2", "Body height")

    # Office visits: the first five as Oracle Health sends them (separate systolic/diastolic,
    # pounds, inches, Fahrenheit), the later five as Epic does (panel, kg, cm, Celsius).
    office_bp = [
        (138, 86),
        (146, 94),
        (152, 96),
        (134, 84),
        (141, 91),
        (128, 82),
        (144, 92),
        (136, 88),
        (149, 95),
        (131, 83),
    ]
    pounds = [187.4, 189.2, 191.0, 190.6, 192.8]
    for n, (eid, start) in enumerate(visits):
        when = start + timedelta(minutes=8)
        split = n < 5
        sys_v, dia_v = office_bp[n]
        (bp_split if split else bp_panel)(eid, when, sys_v, dia_v)
        simple_vital(eid, when, hr_code, _qty(rng.randint(68, 88), "/min"), split)
        simple_vital(eid, when, rr_code, _qty(rng.choice([14, 16, 16, 18]), "/min"), split)
        if split:
            simple_vital(eid, when, temp_code, _qty(round(rng.gauss(98.2, 0.3), 1), "degF", "[degF]"), split)
            simple_vital(eid, when, weight_code, _qty(pounds[n], "lb", "[lb_av]"), split)
            if n in (0, 3):
                simple_vital(eid, when, height_code, _qty(64.5, "in", "[in_i]"), split)
        else:
            simple_vital(eid, when, temp_code, _qty(round(rng.gauss(36.8, 0.15), 1), "Cel"), split)
            simple_vital(
                eid, when, weight_code, _qty(round(87.4 + (n - 5) * 0.6 + rng.gauss(0, 0.3), 1), "kg"), split
            )
            if n in (5, 8):
                simple_vital(eid, when, height_code, _qty(163.8, "cm"), split)
        spo2(eid, when, rng.choice([97, 98, 98, 99]))

    # The ED visit (Oracle-style vitals): a hypoglycaemia, a urinary tract infection.
    when = ed_start + timedelta(minutes=20)
    bp_split(ed, when, 158, 97)
    simple_vital(ed, when, hr_code, _qty(104, "/min"), True)
    simple_vital(ed, when, temp_code, _qty(100.9, "degF", "[degF]"), True)
    spo2(ed, when, 97)

    # The admission in progress: hypertensive urgency and hyperkalaemia, vitals every ~6 hours.
    inpatient_bp = [
        (186, 122),
        (174, 108),
        (168, 104),
        (162, 100),
        (158, 98),
        (151, 94),
        (147, 92),
        (144, 90),
    ]
    for n, (sys_v, dia_v) in enumerate(inpatient_bp):
        when = admit + timedelta(minutes=14) + timedelta(hours=6 * n, minutes=rng.randint(0, 40))
        bp_panel(current, when, sys_v, dia_v)
        simple_vital(current, when, hr_code, _qty(rng.randint(82, 102), "/min"), False)
        simple_vital(current, when, rr_code, _qty(rng.choice([16, 18, 20, 22]), "/min"), False)
        if n == 0:
            spo2(current, when, 94.6, 2, 28)  # on 2 L/min nasal cannula
            simple_vital(current, when, temp_code, _qty(100.6, "degF", "[degF]"), False)
            simple_vital(current, when, weight_code, _qty(195.3, "lb", "[lb_av]"), False)
        elif n == 3:
            spo2(current, when, 101)  # a probe artefact: impossible, yet sent as it was recorded
            simple_vital(current, when, temp_code, _qty(37.4, "Cel"), False)
        elif n == 5:
            spo2(current, when, 96, 1, 24)
            simple_vital(current, when, weight_code, _qty(88.1, "kg"), False)
        else:
            spo2(current, when, rng.choice([95, 96, 97]))
            simple_vital(current, when, temp_code, _qty(round(rng.gauss(36.9, 0.2), 1), "Cel"), False)

    def lab_code(local: str, name: str, loinc: str, display: str) -> dict:
        return _cc(_coding(EPIC_LAB, local, name.upper()), _coding(LOINC, loinc, display), text=name)

    potassium = lab_code("1534098", "Potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma")
    sodium = lab_code("1534097", "Sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma")
    creatinine = lab_code("1534100", "Creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma")
    glucose = lab_code("1534102", "Glucose", "2345-7", "Glucose [Mass/volume] in Serum or Plasma")
    bun = lab_code("1534099", "BUN", "3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma")
    egfr = lab_code(
        "1534120",
        "eGFR",
        "98979-8",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
        "Creatinine-based formula (CKD-EPI 2021)",
    )
    hemoglobin = lab_code("1534201", "Hemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood")
    wbc = lab_code("1534200", "WBC", "6690-2", "Leukocytes [#/volume] in Blood by Automated count")
    alp = lab_code(
        "1534110",
        "Alkaline Phosphatase",
        "6768-6",
        "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
    )
    a1c = lab_code("1534300", "Hemoglobin A1C", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")

    def rng_range(low: float | None, high: float | None, unit: str, code: str | None = None, **extra) -> dict:
        out: dict = {}
        if low is not None:
            out["low"] = _qty(low, unit, code)
        if high is not None:
            out["high"] = _qty(high, unit, code)
        return out | extra

    def years(low: int | None, high: int | None) -> dict:
        age: dict = {}
        if low is not None:
            age["low"] = {"value": low, "unit": "years", "system": UCUM, "code": "a"}
        if high is not None:
            age["high"] = {"value": high, "unit": "years", "system": UCUM, "code": "a"}
        return age

    female_v3 = _cc(_coding(GENDER, "F", "Female"), text="Female")
    male_v3 = _cc(_coding(GENDER, "M", "Male"), text="Male")
    female_sct = _cc(_coding(SNOMED, "248152002", "Female"), text="Female")
    male_sct = _cc(_coding(SNOMED, "248153007", "Male"), text="Male")
    hgb_ranges = [  # by sex and age (HL7 v3 AdministrativeGender)
        rng_range(13.2, 16.6, "g/dL", appliesTo=[male_v3], age=years(18, None)),
        rng_range(11.6, 15.0, "g/dL", appliesTo=[female_v3], age=years(18, None)),
        rng_range(11.0, 15.5, "g/dL", age=years(1, 17)),
    ]
    creat_ranges = [  # by sex (SNOMED), adults
        rng_range(0.74, 1.35, "mg/dL", appliesTo=[male_sct], age=years(18, None)),
        rng_range(0.59, 1.04, "mg/dL", appliesTo=[female_sct], age=years(18, None)),
    ]
    alp_ranges = [  # by age only
        rng_range(100, 390, "U/L", age=years(0, 17)),
        rng_range(44, 147, "U/L", age=years(18, None)),
    ]

    def lab(eid: str, when: datetime, code: dict, status: str = "final", **fields) -> dict:
        return obs(epic_id(), eid, when, lab_cat, code, status=status, performer=[jones], **fields)

    # Office labs every other visit: a creatinine creeping up, the eGFR falling (first ">=90").
    office_draws: list[tuple[str, list[dict]]] = []  # for the lab's reports, below
    for n, (eid, start) in enumerate(visits[::2]):
        when = start + timedelta(minutes=35)
        mark = len(resources)
        creat = [0.71, 0.84, 0.97, 1.12, 1.24][n]
        lab(
            eid,
            when,
            creatinine,
            valueQuantity=_qty(creat, "mg/dL"),
            referenceRange=creat_ranges,
            interpretation=_interp("H" if creat > 1.04 else "N"),
        )
        if n == 0:
            lab(
                eid,
                when,
                egfr,
                valueQuantity=_qty(90, "mL/min/{1.73_m2}", comparator=">="),
                referenceRange=[rng_range(60, None, "mL/min/{1.73_m2}")],
                interpretation=_interp("N"),
            )
        else:
            value = [0, 75, 64, 54, 48][n]
            lab(
                eid,
                when,
                egfr,
                valueQuantity=_qty(value, "mL/min/{1.73_m2}"),
                referenceRange=[rng_range(60, None, "mL/min/{1.73_m2}")],
                interpretation=_interp("L" if value < 60 else "N"),
            )
        lab(
            eid,
            when,
            potassium,
            valueQuantity=_qty(round(rng.uniform(4.1, 4.9), 1), "mmol/L"),
            referenceRange=[rng_range(3.5, 5.1, "mmol/L", text="3.5 - 5.1 mmol/L")],
            interpretation=_interp("N"),
        )
        lab(
            eid,
            when,
            sodium,
            status="amended" if n == 2 else "final",
            valueQuantity=_qty(rng.randint(137, 141), "mmol/L"),
            referenceRange=[rng_range(136, 145, "mmol/L")],
            interpretation=_interp("N"),
            **({"note": [{"text": "Amended: specimen source updated to venous."}]} if n == 2 else {}),
        )
        lab(
            eid,
            when,
            hemoglobin,
            status="corrected" if n == 1 else "final",
            valueQuantity=_qty([12.9, 12.4, 12.1, 11.8, 11.5][n], "g/dL"),
            referenceRange=hgb_ranges,
            interpretation=_interp("L" if [12.9, 12.4, 12.1, 11.8, 11.5][n] < 11.6 else "N"),
            **({"note": [{"text": "Corrected result: previously reported as 21.4 g/dL."}]} if n == 1 else {}),
        )
        lab(
            eid,
            when,
            a1c,
            valueQuantity=_qty([7.9, 8.4, 7.6, 7.2, 7.4][n], "%"),
            interpretation=_interp("H"),
            referenceRange=[rng_range(None, 5.6, "%", text="<5.7 %")],
        )
        lab(
            eid,
            when,
            alp,
            valueQuantity=_qty(rng.randint(70, 110), "U/L"),
            referenceRange=alp_ranges,
            interpretation=_interp("N"),
        )

        office_draws.append((eid, resources[mark:]))

    # The ED visit: critical low glucose, a urinalysis, a COVID-19 PCR.
    when = ed_start + timedelta(minutes=31)
    mark = len(resources)
    lab(
        ed,
        when,
        glucose,
        valueQuantity=_qty(38, "mg/dL"),
        interpretation=_interp("LL"),
        referenceRange=[rng_range(70, 99, "mg/dL")],
    )
    lab(
        ed,
        when,
        lab_code("1535001", "Glucose, UA", "25428-4", "Glucose [Presence] in Urine by Test strip"),
        valueString="Negative",
        referenceRange=[{"text": "Negative"}],
    )
    lab(
        ed,
        when,
        lab_code("1535004", "Nitrite, UA", "5802-4", "Nitrite [Presence] in Urine by Test strip"),
        valueCodeableConcept=_cc(_coding(SNOMED, "10828004", "Positive"), text="Positive"),
        interpretation=_interp("A"),
        referenceRange=[{"text": "Negative"}],
    )
    lab(
        ed,
        when,
        lab_code("1535002", "Protein, UA", "20454-5", "Protein [Presence] in Urine by Test strip"),
        valueString="Trace",
        referenceRange=[{"text": "Negative"}],
        interpretation=_interp("A"),
    )
    lab(
        ed,
        when,
        lab_code(
            "1536010",
            "SARS-CoV-2 PCR",
            "94500-6",
            "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory system specimen by NAA with probe detection",
        ),
        valueCodeableConcept=_cc(_coding(SNOMED, "260415000", "Not detected"), text="Not Detected"),
        referenceRange=[{"text": "Not Detected"}],
    )
    lab(
        ed,
        when,
        lab_code("1534400", "CRP", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"),
        valueString="<0.1",
        referenceRange=[{"text": "0.0 - 0.9 mg/dL"}],
    )

    ed_labs = resources[mark:]

    # The admission: a critical potassium, labs with flags but no range, a preliminary CBC,
    # a cancelled repeat potassium (the newest of its code) and a glucose entered in error.
    when = admit + timedelta(minutes=42)
    mark = len(resources)
    lab(
        current,
        when,
        potassium,
        valueQuantity=_qty(6.8, "mmol/L"),
        interpretation=_interp("HH"),
        referenceRange=[rng_range(3.5, 5.1, "mmol/L", text="3.5 - 5.1 mmol/L")],
        note=[{"text": "Critical result called to and read back by RN J. Ortiz."}],
    )
    lab(
        current,
        when,
        sodium,
        valueQuantity=_qty(133, "mmol/L"),
        interpretation=_interp("L"),
        referenceRange=[rng_range(136, 145, "mmol/L")],
    )
    lab(
        current,
        when,
        creatinine,
        valueQuantity=_qty(1.42, "mg/dL"),
        referenceRange=creat_ranges,
        interpretation=_interp("H"),
    )
    lab(
        current,
        when,
        egfr,
        valueQuantity=_qty(42, "mL/min/{1.73_m2}"),
        interpretation=_interp("L"),
        referenceRange=[rng_range(60, None, "mL/min/{1.73_m2}")],
    )
    lab(current, when, glucose, valueQuantity=_qty(212, "mg/dL"), interpretation=_interp("H"))  # no range
    lab(current, when, bun, valueQuantity=_qty(31, "mg/dL"), interpretation=_interp("H"))  # no range
    lab(
        current,
        when,
        lab_code("1534500", "Troponin I", "10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma"),
        valueQuantity=_qty(0.01, "ng/mL", comparator="<"),
        referenceRange=[rng_range(None, 0.04, "ng/mL")],
        interpretation=_interp("N"),
    )
    lab(
        current,
        when,
        lab_code(
            "1534401",
            "hs-CRP",
            "30522-7",
            "C reactive protein [Mass/volume] in Serum or Plasma by High sensitivity method",
        ),
        valueQuantity=_qty(0.3, "mg/L", comparator="<"),
        referenceRange=[{"text": "<3.0 mg/L"}],
    )
    admission_labs = resources[mark:]
    later = admit + timedelta(hours=7, minutes=5)
    mark = len(resources)
    lab(
        current,
        later,
        hemoglobin,
        valueQuantity=_qty(10.9, "g/dL"),
        referenceRange=hgb_ranges,
        interpretation=_interp("L"),
    )
    lab(
        current,
        later,
        wbc,
        status="preliminary",
        valueQuantity=_qty(11.8, "10*3/uL"),
        referenceRange=[rng_range(4.0, 11.0, "10*3/uL")],
        interpretation=_interp("H"),
    )
    lab(
        current,
        later,
        potassium,
        valueQuantity=_qty(5.6, "mmol/L"),
        interpretation=_interp("H"),
        referenceRange=[rng_range(3.5, 5.1, "mmol/L", text="3.5 - 5.1 mmol/L")],
    )
    later_labs = resources[mark:]
    lab(
        current,
        admit + timedelta(days=1, hours=9),
        potassium,
        status="cancelled",
        dataAbsentReason=_cc(_coding(ABSENT, "not-performed", "Not Performed"), text="Not Performed"),
        note=[{"text": "Specimen hemolyzed. Test cancelled; recollection requested."}],
    )
    lab(
        current,
        admit + timedelta(days=1, hours=10),
        glucose,
        status="entered-in-error",
        valueQuantity=_qty(1020, "mg/dL"),
        interpretation=_interp("HH"),
        note=[{"text": "Result entered on the wrong patient."}],
    )

    admission = (current, admission_labs, later_labs)
    _ehrstyle_reports(resources, subject, office_draws, (ed, ed_labs), admission, admit)

    def condition(
        cid_code: tuple[str, str],
        icd: tuple[str, str],
        text: str,
        category: str,
        clinical: str = "active",
        encounter_id: str | None = None,
        **onset,
    ) -> None:
        cat_system = US_CORE_CAT if category == "health-concern" else COND_CAT
        cat_display = {
            "problem-list-item": "Problem List Item",
            "encounter-diagnosis": "Encounter Diagnosis",
            "health-concern": "Health Concern",
        }[category]
        cond = {
            "resourceType": "Condition",
            "id": epic_id(),
            "clinicalStatus": _cc(
                _coding(COND_CLIN, clinical, clinical.capitalize()), text=clinical.capitalize()
            ),
            "verificationStatus": _cc(_coding(COND_VER, "confirmed", "Confirmed"), text="Confirmed"),
            "category": [_cc(_coding(cat_system, category, cat_display), text=cat_display)],
            "code": _cc(_coding(SNOMED, *cid_code), _coding(ICD10, *icd), text=text),
            "subject": subject,
            **onset,
        }
        if encounter_id:
            cond["encounter"] = _ref("Encounter", encounter_id)
        resources.append(cond)

    recorded = {"recordedDate": _z(visits[0][1])}
    condition(
        ("59621000", "Essential hypertension"),
        ("I10", "Essential (primary) hypertension"),
        "Essential hypertension",
        "problem-list-item",
        onsetDateTime="2004",
        **recorded,
    )
    condition(
        ("44054006", "Diabetes mellitus type 2"),
        ("E11.65", "Type 2 diabetes mellitus with hyperglycemia"),
        "Type 2 diabetes mellitus with hyperglycemia, with long-term current use of insulin (HCC)",
        "problem-list-item",
        onsetDateTime="2011-03",
        **recorded,
    )
    condition(
        ("195967001", "Asthma"),
        ("J45.20", "Mild intermittent asthma, uncomplicated"),
        "Mild intermittent asthma without complication",
        "problem-list-item",
        onsetString="childhood",
    )
    condition(
        ("55822004", "Hyperlipidemia"),
        ("E78.5", "Hyperlipidemia, unspecified"),
        "Hyperlipidemia, unspecified hyperlipidemia type",
        "problem-list-item",
        onsetAge={"value": 45, "unit": "years", "system": UCUM, "code": "a"},
    )
    ckd_year = anchor.year - 2
    condition(
        ("700378005", "Chronic kidney disease stage 3A"),
        ("N18.31", "Chronic kidney disease, stage 3a"),
        "Stage 3a chronic kidney disease (HCC)",
        "problem-list-item",
        onsetPeriod={"start": f"{ckd_year}-06", "end": f"{ckd_year}-09"},
    )
    condition(
        ("129839007", "At risk for falls"),
        ("Z91.81", "History of falling"),
        "At risk for falls",
        "health-concern",
        onsetDateTime=_z(visits[-1][1]),
    )
    condition(
        ("59621000", "Essential hypertension"),
        ("I10", "Essential (primary) hypertension"),
        "Essential hypertension",
        "encounter-diagnosis",
        encounter_id=visits[-1][0],
        onsetDateTime=_z(visits[-1][1]),
    )
    condition(
        ("68566005", "Urinary tract infectious disease"),
        ("N39.0", "Urinary tract infection, site not specified"),
        "Acute cystitis without hematuria",
        "encounter-diagnosis",
        clinical="resolved",
        encounter_id=ed,
        onsetDateTime=_z(ed_start),
        abatementDateTime=_z(ed_start + timedelta(days=10)),
    )
    condition(
        ("706882009", "Hypertensive urgency"),
        ("I16.0", "Hypertensive urgency"),
        "Hypertensive urgency",
        "encounter-diagnosis",
        encounter_id=current,
        onsetDateTime=_z(admit),
    )
    condition(
        ("14140009", "Hyperkalemia"),
        ("E87.5", "Hyperkalemia"),
        "Hyperkalemia",
        "encounter-diagnosis",
        encounter_id=current,
        onsetDateTime=_z(admit),
    )


# Epic's procedure (order) records: the code an Epic lab report carries beside LOINC.
EPIC_PROC = "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580"
SMEAR_HTML = (
    "<html><body><h1>Peripheral smear review</h1><script>alert('report')</script>"
    "<p>Red cells normocytic, normochromic; mild anisocytosis.</p></body></html>"
)


def _ehrstyle_reports(
    resources: list[dict],
    subject: dict,
    office_draws: list[tuple[str, list[dict]]],
    ed: tuple[str, list[dict]],
    admission: tuple[str, list[dict], list[dict]],
    admit: datetime,
) -> None:
    """pat-ehrstyle's lab reports as Epic and Oracle Health send them, awkward parts included: a
    preliminary report and its later amendment, a reference to an Observation that does not
    exist, an absolute reference, LOINC long names only in coding.display, a cancelled report
    and a pathologist's narrative with no results. No `rng` draws: the other resources keep
    their ids and values."""

    def epic(local: str, name: str, loinc: str | None = None, display: str | None = None) -> dict:
        codings = [_coding(EPIC_PROC, local, name.upper())]
        if loinc:
            codings.append(_coding(LOINC, loinc, display))
        return _cc(*codings, text=name)

    def loinc_only(code: str, display: str) -> dict:
        return _cc(_coding(LOINC, code, display))

    def loinc_display(obs: dict) -> str:
        return next(c["display"] for c in obs["code"]["coding"] if c["system"] == LOINC)

    def effective(obs: dict) -> datetime:
        return datetime.fromisoformat(obs["effectiveDateTime"].replace("Z", "+00:00"))

    def report(rid: str, eid: str, code: dict, results: list[dict], status: str = "final", **fields) -> None:
        """`results`: Observations, or raw references; `when` defaults to the first one's time."""
        when = fields.pop("when", None) or effective(results[0])
        refs = [r if "reference" in r else _ref("Observation", r["id"], r["code"]["text"]) for r in results]
        res = {
            "resourceType": "DiagnosticReport",
            "id": rid,
            "status": status,
            "category": [_cc(_coding(V2_0074, "LAB", "Laboratory"), text="Lab")],
            "code": code,
            "subject": subject,
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": _z(when),
            "issued": _z(fields.pop("issued", when + timedelta(hours=2))),
            "performer": [{"display": "Springfield Medical Center Laboratory"}],
            **fields,
        }
        if refs:
            res["result"] = refs
        resources.append(res)

    bmp = epic("1000", "Basic Metabolic Panel", "24321-2", "Basic metabolic 2000 panel - Serum or Plasma")
    cbc = loinc_only("58410-2", "CBC panel - Blood by Automated count")
    hepatic = loinc_only("24325-3", "Hepatic function 2000 panel - Serum or Plasma")
    for n, (eid, (creat, egfr, k, na, hgb, a1c, alp)) in enumerate(office_draws):
        a1c_code = epic("1011", "Hemoglobin A1C", "4548-4", loinc_display(a1c))
        report(f"eDR-office-{n}-bmp", eid, bmp, [creat, egfr, k, na])
        report(f"eDR-office-{n}-cbc", eid, cbc, [hgb])
        report(f"eDR-office-{n}-a1c", eid, a1c_code, [a1c])
        report(f"eDR-office-{n}-hfp", eid, hepatic, [alp])

    ed_id, (glucose, ua_glucose, nitrite, protein, covid, _crp) = ed
    urinalysis = loinc_only("24357-6", "Urinalysis macro (dipstick) panel - Urine")
    report("eDR-ed-glucose", ed_id, epic("1002", "Glucose"), [glucose])  # superseded since
    report("eDR-ed-ua", ed_id, urinalysis, [ua_glucose, nitrite, protein])
    report("eDR-ed-covid", ed_id, epic("1020", "SARS-CoV-2 PCR", "94500-6", loinc_display(covid)), [covid])

    current, first, later = admission
    k, na, creat, egfr, glucose, bun, troponin, _hs_crp = first
    drawn = effective(k)
    panel = [k, na, creat, egfr, glucose, bun]
    report("eDR-admit-bmp-prelim", current, bmp, panel, "preliminary", issued=drawn + timedelta(minutes=48))
    missing = {"reference": "Observation/eDRnoSuchObservation3", "display": "Chloride"}
    report(
        "eDR-admit-bmp",
        current,
        bmp,
        [*panel, missing],
        "amended",
        issued=drawn + timedelta(hours=3, minutes=10),
        conclusion="Critical potassium 6.8 mmol/L called to and read back by RN J. Ortiz. "
        "Amended: glucose specimen noted as non-fasting.",
    )
    absolute = {"reference": f"{FHIR_BASE_TOKEN}/Observation/{troponin['id']}", "display": "Troponin I"}
    report("eDR-admit-troponin", current, epic("1030", "Troponin I"), [absolute], when=drawn)

    hgb, wbc, k_repeat = later
    with_diff = loinc_only("57021-8", "CBC W Auto Differential panel - Blood")
    report("eDR-admit-cbc", current, with_diff, [hgb, wbc], "preliminary")
    repeat = epic("1001", "Potassium", "2823-3", loinc_display(k_repeat))
    report("eDR-admit-k", current, repeat, [k_repeat])
    report(
        "eDR-admit-k-cancelled",
        current,
        epic("1001", "Potassium"),
        [],
        "cancelled",
        when=admit + timedelta(days=1, hours=9),
        conclusion="Specimen hemolyzed. Test cancelled; recollection requested.",
    )
    report(
        "eDR-admit-smear",
        current,
        epic("1050", "Peripheral Smear, Pathologist Review"),
        [],
        when=effective(hgb),
        issued=admit + timedelta(days=1, hours=4),
        conclusion="Normocytic, normochromic anemia with mild anisocytosis. No schistocytes or "
        "blasts. Mild neutrophilia, likely reactive.",
        presentedForm=[
            {
                "contentType": "text/html",
                "title": "Peripheral smear review",
                "data": base64.b64encode(SMEAR_HTML.encode()).decode(),
            }
        ],
    )


# --- pat-child -------------------------------------------------------------------------------

CHILD_VITALS = {  # code, display, UCUM unit
    "weight": ("29463-7", "Body weight", "kg"),
    "height": ("8302-2", "Body height", "cm"),
    "head": ("9843-4", "Head Occipital-frontal circumference", "cm"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "hr": ("8867-4", "Heart rate", "/min"),
    "rr": ("9279-1", "Respiratory rate", "/min"),
    "temp": ("8310-5", "Body temperature", "Cel"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
}


def _child(resources: list[dict], rng: random.Random, anchor: datetime) -> None:
    pid = "pat-child"
    birth = (anchor - timedelta(days=4 * 365 + 21)).date()  # seen at 48 months, three weeks ago
    resources.append(
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [_mrn_identifier(MRN, "MRN100733")],
            "active": True,
            "name": [{"use": "official", "family": "Lindqvist", "given": ["Mila"]}],
            "gender": "female",
            "birthDate": birth.isoformat(),
            "contact": [
                {
                    "relationship": [
                        _cc(_coding("http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin"))
                    ],
                    "name": {"family": "Lindqvist", "given": ["Erik"]},
                    "telecom": [{"system": "phone", "value": "555-0177"}],
                }
            ],
            "generalPractitioner": [_ref("Practitioner", "prac-patel")],
        }
    )
    subject = _ref("Patient", pid)
    counter = iter(range(1, 10_000))

    def obs(eid: str, when: datetime, category: str, code: str, display: str, **value) -> None:
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"obs-child-{next(counter):04d}",
                "status": "final",
                "category": [
                    _cc(
                        _coding(
                            OBS_CAT, category, "Vital Signs" if category == "vital-signs" else "Laboratory"
                        )
                    )
                ],
                "code": _cc(_coding(LOINC, code, display), text=display),
                "subject": subject,
                "encounter": _ref("Encounter", eid),
                "effectiveDateTime": _z(when),
                **value,
            }
        )

    def born_plus(months: float, hour: int) -> datetime:
        day = datetime(birth.year, birth.month, birth.day, tzinfo=UTC) + timedelta(days=months * 30.44)
        return day.replace(hour=hour, minute=rng.choice([0, 15, 30, 45]))

    well = _coding(SNOMED, "410620009", "Well child visit (procedure)")
    sick = _coding(SNOMED, "185345009", "Encounter for symptom (procedure)")
    # Well-child visits at 24, 30, 36 and 48 months, a sick visit (otitis) at 42 months.
    visits = [(24, well), (30, well), (36, well), (42, sick), (48, well)]
    # growth: months -> weight kg (to the gram), height cm, head circumference cm
    growth = {
        24: (12.215, 86.9, 47.6),
        30: (13.108, 91.2, 48.2),
        36: (14.032, 95.3, 48.8),
        48: (16.385, 103.4, 49.9),
    }
    for months, kind in visits:
        start = born_plus(months, 9 + rng.randint(0, 6))
        if start > anchor - timedelta(days=3):
            start = (anchor - timedelta(days=3)).replace(hour=10, minute=30)
        eid = f"enc-child-{months}m"
        resources.append(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": _coding(ACT, "AMB", "ambulatory"),
                "type": [_cc(kind, text="Well child visit" if kind is well else "Sick visit")],
                "subject": subject,
                "participant": [{"individual": _ref("Practitioner", "prac-patel", "Dr. Priya Patel")}],
                "period": {"start": _z(start), "end": _z(start + timedelta(minutes=30))},
            }
        )
        when = start + timedelta(minutes=10)
        fever = kind is sick
        vital = {
            "hr": 132 if fever else rng.randint(104, 116),
            "rr": 30 if fever else rng.choice([24, 26, 26, 28]),
            "temp": 38.6 if fever else round(rng.gauss(36.9, 0.15), 1),
            "spo2": 97 if fever else rng.choice([98, 99]),
        }
        if months in growth:
            weight, height, head = growth[months]
            vital |= {"weight": weight, "height": height, "head": head}
            vital["bmi"] = round(weight / (height / 100) ** 2, 1)
        for key, value in vital.items():
            code, display, unit = CHILD_VITALS[key]
            obs(eid, when, "vital-signs", code, display, valueQuantity=_qty(value, unit))
        if months >= 36 and not fever:
            obs(
                eid,
                when,
                "vital-signs",
                "85354-9",
                "Blood pressure panel with all children optional",
                component=[
                    {
                        "code": _cc(_coding(LOINC, "8480-6", "Systolic blood pressure")),
                        "valueQuantity": _qty(rng.randint(94, 102), "mm[Hg]"),
                    },
                    {
                        "code": _cc(_coding(LOINC, "8462-4", "Diastolic blood pressure")),
                        "valueQuantity": _qty(rng.randint(54, 62), "mm[Hg]"),
                    },
                ],
            )
        if months == 24:
            drawn = when + timedelta(minutes=30)
            obs(
                eid,
                drawn,
                "laboratory",
                "718-7",
                "Hemoglobin [Mass/volume] in Blood",
                valueQuantity=_qty(11.8, "g/dL"),
                referenceRange=[{"low": _qty(11.0, "g/dL"), "high": _qty(14.0, "g/dL")}],
            )
            obs(
                eid,
                drawn,
                "laboratory",
                "5671-3",
                "Lead [Mass/volume] in Blood",
                valueQuantity=_qty(3.3, "ug/dL", comparator="<"),
                referenceRange=[{"high": _qty(3.5, "ug/dL")}],
            )

    for n, (code, display, icd, icd_display, months, clinical) in enumerate(
        [
            ("24079001", "Atopic dermatitis", "L20.9", "Atopic dermatitis, unspecified", 24, "active"),
            ("91935009", "Allergy to peanut", "Z91.010", "Allergy to peanuts", 30, "active"),
            (
                "65363002",
                "Otitis media",
                "H66.90",
                "Otitis media, unspecified, unspecified ear",
                42,
                "resolved",
            ),
        ],
        start=1,
    ):
        onset = born_plus(months, 10)
        cond = {
            "resourceType": "Condition",
            "id": f"cond-child-{n}",
            "clinicalStatus": _cc(_coding(COND_CLIN, clinical, clinical.capitalize())),
            "verificationStatus": _cc(_coding(COND_VER, "confirmed", "Confirmed")),
            "category": [_cc(_coding(COND_CAT, "problem-list-item", "Problem List Item"))],
            "code": _cc(_coding(SNOMED, code, display), _coding(ICD10, icd, icd_display), text=display),
            "subject": subject,
            "encounter": _ref("Encounter", f"enc-child-{months}m"),
            "onsetDateTime": onset.date().isoformat(),
            "recordedDate": _z(onset),
        }
        if clinical == "resolved":
            cond["abatementDateTime"] = (onset + timedelta(days=12)).date().isoformat()
        resources.append(cond)


PATIENTS: dict[str, Callable[[list[dict], random.Random, datetime], None]] = {
    "pat-synthea": _synthea,
    "pat-ehrstyle": _ehrstyle,
    "pat-child": _child,
}
