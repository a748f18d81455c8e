"""Deterministic synthetic FHIR R4 data for the sandbox EHR (pure Python, no Django).

`generate(seed, anchor)` returns the same list of resources for the same seed and anchor (the
data's "now"; today at midnight UTC by default, so the demo's data are recent): patients of
different ages and sexes with vitals, labs, conditions and encounters over several years,
practitioners, the edge cases the app must survive (10,000+ observations, no data,
odd-but-valid data, a name containing markup), and the real-world shapes of `sandbox.corpus`.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from sandbox import corpus
from sandbox.codes import (
    ACT,
    COND_CAT,
    COND_CLIN,
    COND_VER,
    ICD10,
    INTERP,
    LOINC,
    MRN,
    OBS_CAT,
    SNOMED,
    UCUM,
    V2_0074,
)

PRACTITIONERS = [
    ("prac-smith", "Smith", ["Sarah"], "female", "dr.smith"),
    ("prac-jones", "Jones", ["David"], "male", "dr.jones"),
    ("prac-patel", "Patel", ["Priya"], "female", ""),
]

# id, family, given, gender, birthDate, conditions, profile
PATIENTS = [
    ("pat-garcia", "Garcia", ["Maria", "Elena"], "female", "1958-03-12", ["htn", "dm2", "obesity"], "std"),
    ("pat-chen", "Chen", ["James"], "male", "1985-07-30", ["hld", "bronchitis"], "std"),
    ("pat-okafor", "Okafor", ["Aisha"], "female", "2015-11-02", ["asthma"], "child"),
    ("pat-miller", "Miller", ["Robert", "J."], "male", "1942-01-20", ["chf", "ckd", "htn"], "std"),
    ("pat-rossi", "Rossi", ["Sofia"], "female", "1990-05-17", ["migraine"], "std"),
    ("pat-tanaka", "Tanaka", ["Kenji"], "male", "1972-09-08", ["copd", "hld"], "std"),
    ("pat-brooks", "Brooks", ["Walter"], "male", "1950-04-04", ["htn", "dm2"], "many"),
    ("pat-blank", "Blank", ["Nora"], "female", "2000-12-24", [], "empty"),
    ("pat-odd", "Nakamura", [], "unknown", "1966", [], "odd"),
    ("pat-xss", "Tester", ["<script>alert(1)</script>"], "other", "1999-02-28", ["htn"], "std"),
]

# Patient logins (username -> patient id); all demo accounts use the password "demo".
PATIENT_LOGINS = {"maria.garcia": "pat-garcia", "james.chen": "pat-chen"}

CONDITIONS = {
    "htn": (
        "38341003",
        "Hypertensive disorder, systemic arterial",
        "I10",
        "Essential (primary) hypertension",
    ),
    "dm2": (
        "44054006",
        "Diabetes mellitus type 2",
        "E11.9",
        "Type 2 diabetes mellitus without complications",
    ),
    "obesity": ("414916001", "Obesity", "E66.9", "Obesity, unspecified"),
    "hld": ("55822004", "Hyperlipidemia", "E78.5", "Hyperlipidemia, unspecified"),
    "asthma": ("195967001", "Asthma", "J45.909", "Unspecified asthma, uncomplicated"),
    "chf": ("42343007", "Congestive heart failure", "I50.9", "Heart failure, unspecified"),
    "ckd": (
        "433144002",
        "Chronic kidney disease stage 3",
        "N18.30",
        "Chronic kidney disease, stage 3 unspecified",
    ),
    "migraine": ("37796009", "Migraine", "G43.909", "Migraine, unspecified, not intractable"),
    "copd": (
        "13645005",
        "Chronic obstructive lung disease",
        "J44.9",
        "Chronic obstructive pulmonary disease",
    ),
    "bronchitis": ("10509002", "Acute bronchitis", "J20.9", "Acute bronchitis, unspecified"),
}
RESOLVED = {"bronchitis"}

# code, display, unit (UCUM), low, high, mean, sd, decimals
VITALS = {
    "hr": ("8867-4", "Heart rate", "/min", 60, 100, 76, 9, 0),
    "rr": ("9279-1", "Respiratory rate", "/min", 12, 20, 16, 2, 0),
    "temp": ("8310-5", "Body temperature", "Cel", 36.1, 37.2, 36.8, 0.3, 1),
    "spo2": ("2708-6", "Oxygen saturation in Arterial blood", "%", 95, 100, 97, 1.5, 0),
    "weight": ("29463-7", "Body weight", "kg", None, None, 78, 0.6, 1),
    "height": ("8302-2", "Body height", "cm", None, None, 172, 0, 0),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18.5, 25, 26, 0, 1),
}
LABS = {
    "cbc": [
        ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0, 7.2, 1.8, 1),
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 14.0, 1.2, 1),
        ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 50, 42, 3, 1),
        ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 260, 60, 0),
    ],
    "bmp": [
        ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 139, 2.5, 0),
        ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.2, 0.45, 1),
        ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 102, 2.5, 0),
        ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 25, 2, 0),
        ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 15, 5, 0),
        ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 1.0, 0.25, 2),
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 95, 18, 0),
        ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 9.4, 0.4, 1),
    ],
    "lipid": [
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", None, 200, 195, 30, 0),
        (
            "13457-7",
            "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
            "mg/dL",
            None,
            100,
            115,
            28,
            0,
        ),
        ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, None, 52, 10, 0),
        ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", None, 150, 140, 45, 0),
    ],
    "a1c": [
        ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 5.5, 0.4, 1),
    ],
}
# The lab reports (DiagnosticReport) of the tidy patients who have them: the others' labs come
# without reports, as from an EHR that does not expose them. panel -> (LOINC, long name, text)
REPORTING = {"pat-chen"}
REPORTS = {
    "cbc": ("58410-2", "CBC panel - Blood by Automated count", "CBC"),
    "bmp": ("24321-2", "Basic metabolic 2000 panel - Serum or Plasma", "Basic Metabolic Panel"),
    "lipid": ("24331-1", "Lipid 1996 panel - Serum or Plasma", "Lipid Panel"),
    "a1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c"),
}
# pat-brooks: 2,000 home-monitoring sets (5 vitals each) every 4 hours, the last weighing
# 75 days before the anchor, so ~2,250 newer vital signs push it out of any "latest 1000" page.
BROOKS_MONITORING_SETS = 2000
BROOKS_LAST_WEIGHED = 75

ENCOUNTER_CLASSES = [("AMB", "ambulatory"), ("IMP", "inpatient encounter"), ("EMER", "emergency")]


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def anchor_at(anchor: date | datetime | None = None) -> datetime:
    """The data's "now": midnight UTC of `anchor` (a date), `anchor` itself (an aware datetime),
    or midnight UTC today. Every date in the data is relative to it, so a fixed anchor gives
    identical data on every run and machine."""
    if isinstance(anchor, datetime):
        if anchor.tzinfo is None:
            raise ValueError("anchor datetime must be timezone-aware")
        return anchor.astimezone(UTC)
    day = anchor or datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _qty(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _cc(system: str, code: str, display: str, text: str | None = None) -> dict:
    out: dict = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


def _category(code: str, display: str) -> list[dict]:
    return [_cc(OBS_CAT, code, display)]


def _interpretation(value: float, low: float | None, high: float | None) -> list[dict]:
    if low is not None and value < low:
        code, display = "L", "Low"
    elif high is not None and value > high:
        code, display = "H", "High"
    else:
        code, display = "N", "Normal"
    return [_cc(INTERP, code, display)]


def _range(low: float | None, high: float | None, unit: str) -> list[dict]:
    rng: dict = {}
    if low is not None:
        rng["low"] = _qty(low, unit)
    if high is not None:
        rng["high"] = _qty(high, unit)
    return [rng]


class _Builder:
    """Accumulates resources with sequential, deterministic ids."""

    def __init__(self, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not security
        self.seed = seed
        self.anchor = anchor
        self.resources: list[dict] = []
        self.counter = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:06d}"

    def value(self, mean: float, sd: float, decimals: int, shift: float = 0.0) -> float:
        v = self.rng.gauss(mean + shift, sd) if sd else mean + shift
        v = round(max(v, 0.1), decimals)
        return int(v) if decimals == 0 else v

    def observation(
        self,
        patient: str,
        encounter: str | None,
        when: datetime,
        code: str,
        display: str,
        category: tuple[str, str],
        **fields,
    ) -> dict:
        obs: dict = {
            "resourceType": "Observation",
            "id": self.next_id("obs"),
            "status": "final",
            "category": _category(*category),
            "code": _cc(LOINC, code, display, display),
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": iso(when),
            "issued": iso(when + timedelta(hours=1)),
        }
        if encounter:
            obs["encounter"] = {"reference": f"Encounter/{encounter}"}
        obs.update(fields)
        self.resources.append(obs)
        return obs

    def vitals(self, patient: str, encounter: str | None, when: datetime, prof: dict) -> None:
        cat = ("vital-signs", "Vital Signs")
        sys_v = self.value(prof["sys"], 9, 0)
        dia_v = self.value(prof["dia"], 6, 0)
        self.observation(
            patient,
            encounter,
            when,
            "85354-9",
            "Blood pressure panel with all children optional",
            cat,
            component=[
                {
                    "code": _cc(LOINC, "8480-6", "Systolic blood pressure"),
                    "valueQuantity": _qty(sys_v, "mm[Hg]"),
                    "interpretation": _interpretation(sys_v, 90, 130),
                    "referenceRange": _range(90, 130, "mm[Hg]"),
                },
                {
                    "code": _cc(LOINC, "8462-4", "Diastolic blood pressure"),
                    "valueQuantity": _qty(dia_v, "mm[Hg]"),
                    "interpretation": _interpretation(dia_v, 60, 80),
                    "referenceRange": _range(60, 80, "mm[Hg]"),
                },
            ],
        )
        for key in ("hr", "rr", "temp", "spo2"):
            code, display, unit, low, high, mean, sd, dec = VITALS[key]
            v = self.value(mean, sd, dec, prof.get(key, 0.0))
            self.observation(
                patient,
                encounter,
                when,
                code,
                display,
                cat,
                valueQuantity=_qty(v, unit),
                interpretation=_interpretation(v, low, high),
                referenceRange=_range(low, high, unit),
            )
        if prof.get("anthro", True):
            weight = self.value(prof["weight"], 0.8, 1)
            height = prof["height"]
            for key, v in (("weight", weight), ("height", height)):
                code, display, unit, *_ = VITALS[key]
                self.observation(patient, encounter, when, code, display, cat, valueQuantity=_qty(v, unit))
            bmi = round(weight / (height / 100) ** 2, 1)
            code, display, unit, low, high, *_ = VITALS["bmi"]
            self.observation(
                patient,
                encounter,
                when,
                code,
                display,
                cat,
                valueQuantity=_qty(bmi, unit),
                interpretation=_interpretation(bmi, low, high),
                referenceRange=_range(low, high, unit),
            )

    def labs(self, patient: str, encounter: str | None, when: datetime, panel: str, prof: dict) -> list[dict]:
        cat = ("laboratory", "Laboratory")
        made = []
        for code, display, unit, low, high, mean, sd, dec in LABS[panel]:
            v = self.value(mean, sd, dec, prof.get(code, 0.0))
            made.append(self.observation(
                patient,
                encounter,
                when,
                code,
                display,
                cat,
                valueQuantity=_qty(v, unit),
                interpretation=_interpretation(v, low, high),
                referenceRange=_range(low, high, unit),
            ))
        return made

    def report(self, rid: str, panel: str, observations: list[dict]) -> None:
        """The lab's report of one panel draw, listing its Observations (final, issued 2 h later).

        Its id is not from `next_id`, so the other resources keep theirs."""
        code, display, text = REPORTS[panel]
        first = observations[0]
        when = datetime.fromisoformat(first["effectiveDateTime"].replace("Z", "+00:00"))
        report = {
            "resourceType": "DiagnosticReport",
            "id": rid,
            "status": "final",
            "category": [_cc(V2_0074, "LAB", "Laboratory")],
            "code": _cc(LOINC, code, display, text),
            "subject": first["subject"],
            "effectiveDateTime": first["effectiveDateTime"],
            "issued": iso(min(when + timedelta(hours=2), self.anchor)),
            "performer": [{"display": "Springfield Clinical Laboratory"}],
            "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
        }
        if "encounter" in first:
            report["encounter"] = first["encounter"]
        self.resources.append(report)


def _patient(pid: str, family: str, given: list[str], gender: str, birth: str, n: int) -> dict:
    name: dict = {"use": "official", "family": family}
    if given:
        name["given"] = given
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "use": "usual",
                "type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
                "system": MRN,
                "value": f"MRN{100000 + n * 7919}",
            }
        ],
        "active": True,
        "name": [name],
        "gender": gender,
        "birthDate": birth,
        "address": [{"use": "home", "line": [f"{100 + n} Main St"], "city": "Springfield", "state": "IL"}],
        "telecom": [{"system": "phone", "value": f"555-01{n:02d}", "use": "home"}],
        "generalPractitioner": [{"reference": "Practitioner/prac-smith"}],
    }


def _practitioner(pid: str, family: str, given: list[str], gender: str) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "identifier": [
            {
                "system": "http://hl7.org/fhir/sid/us-npi",
                "value": f"199{sum(map(ord, pid)) * 7919 % 10**7:07d}",
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given, "prefix": ["Dr."]}],
        "gender": gender,
    }


def _encounter(
    eid: str, patient: str, cls: tuple[str, str], start: datetime, end: datetime | None, prac: str
) -> dict:
    enc: dict = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished" if end else "in-progress",
        "class": {"system": ACT, "code": cls[0], "display": cls[1]},
        "type": [_cc(SNOMED, "185349003", "Encounter for check up (procedure)", "Check-up")]
        if cls[0] == "AMB"
        else [_cc(SNOMED, "50849002", "Emergency room admission (procedure)", "Emergency visit")]
        if cls[0] == "EMER"
        else [_cc(SNOMED, "32485007", "Hospital admission (procedure)", "Hospital admission")],
        "subject": {"reference": f"Patient/{patient}"},
        "participant": [{"individual": {"reference": f"Practitioner/{prac}"}}],
        "period": {"start": iso(start)} | ({"end": iso(end)} if end else {}),
    }
    return enc


def _condition(cid: str, patient: str, key: str, onset: datetime, encounter: str | None) -> dict:
    sct, sct_display, icd, icd_display = CONDITIONS[key]
    resolved = key in RESOLVED
    cond: dict = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _cc(
            COND_CLIN, "resolved" if resolved else "active", "Resolved" if resolved else "Active"
        ),
        "verificationStatus": _cc(COND_VER, "confirmed", "Confirmed"),
        "category": [_cc(COND_CAT, "problem-list-item", "Problem List Item")],
        "code": {
            "coding": [
                {"system": SNOMED, "code": sct, "display": sct_display},
                {"system": ICD10, "code": icd, "display": icd_display},
            ],
            "text": sct_display,
        },
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": iso(onset),
        "recordedDate": iso(onset + timedelta(days=1)),
    }
    if resolved:
        cond["abatementDateTime"] = iso(onset + timedelta(days=21))
    if encounter:
        cond["encounter"] = {"reference": f"Encounter/{encounter}"}
    return cond


def _profile(patient: tuple, rng: random.Random) -> dict:
    _, _, _, gender, _birth, conds, kind = patient
    prof = {
        "sys": 124,
        "dia": 78,
        "weight": 82 if gender == "male" else 68,
        "height": 178 if gender == "male" else 164,
        "anthro": True,
    }
    if kind == "child":
        prof.update(weight=28, height=132, sys=104, dia=64, hr=14, rr=4)
    if "htn" in conds:
        prof.update(sys=148, dia=92)
    if "obesity" in conds:
        prof["weight"] = 104
    if "dm2" in conds:
        prof.update({"2345-7": 60, "4548-4": 2.4})
    if "hld" in conds:
        prof.update({"2093-3": 50, "13457-7": 45, "2571-8": 60})
    if "ckd" in conds:
        prof.update({"2160-0": 0.9, "3094-0": 14, "2823-3": 0.5})
    if "copd" in conds:
        prof.update(spo2=-4, rr=4)
    return prof


def _odd_patient(b: _Builder, pid: str) -> None:
    """Valid but unusual data: text-only codes, non-Quantity values, absent data, no dates."""
    now = b.anchor
    enc = _encounter(
        "enc-odd-1",
        pid,
        ENCOUNTER_CLASSES[0],
        now - timedelta(days=40),
        now - timedelta(days=40, hours=-1),
        "prac-jones",
    )
    b.resources.append(enc)
    subject = {"reference": f"Patient/{pid}"}
    b.resources += [
        {
            "resourceType": "Observation",
            "id": "obs-odd-text",
            "status": "final",
            "category": _category("survey", "Survey"),
            "code": {"text": "Patient-reported mood"},
            "subject": subject,
            "effectiveDateTime": iso(now - timedelta(days=40)),
            "valueString": "Feeling fine, a bit tired",
        },
        {
            "resourceType": "Observation",
            "id": "obs-odd-smoking",
            "status": "final",
            "category": _category("social-history", "Social History"),
            "code": _cc(LOINC, "72166-2", "Tobacco smoking status"),
            "subject": subject,
            "effectiveDateTime": iso(now - timedelta(days=40)),
            "valueCodeableConcept": _cc(SNOMED, "266919005", "Never smoked tobacco", "Never smoker"),
        },
        {
            "resourceType": "Observation",
            "id": "obs-odd-absent",
            "status": "final",
            "category": _category("vital-signs", "Vital Signs"),
            "code": _cc(LOINC, "8867-4", "Heart rate"),
            "subject": subject,
            "encounter": {"reference": "Encounter/enc-odd-1"},
            "effectiveDateTime": iso(now - timedelta(days=40)),
            "dataAbsentReason": _cc(
                "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                "asked-unknown",
                "Asked But Unknown",
            ),
        },
        {
            "resourceType": "Observation",
            "id": "obs-odd-nodate",
            "status": "preliminary",
            "category": _category("laboratory", "Laboratory"),
            "code": _cc(LOINC, "2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
            "subject": subject,
            "valueQuantity": _qty(101, "mg/dL"),
        },
        {
            "resourceType": "Observation",
            "id": "obs-odd-error",
            "status": "entered-in-error",
            "category": _category("vital-signs", "Vital Signs"),
            "code": _cc(LOINC, "29463-7", "Body weight"),
            "subject": subject,
            "effectiveDateTime": iso(now - timedelta(days=41)),
            "valueQuantity": _qty(712, "kg"),
        },
        {
            "resourceType": "Observation",
            "id": "obs-odd-period",
            "status": "amended",
            "code": {"text": "Sleep duration (self-reported)"},
            "subject": subject,
            "effectivePeriod": {
                "start": iso(now - timedelta(days=39, hours=8)),
                "end": iso(now - timedelta(days=39)),
            },
            "valueQuantity": {"value": 7.5, "unit": "hours"},
        },
        {
            "resourceType": "Condition",
            "id": "cond-odd-text",
            "clinicalStatus": _cc(COND_CLIN, "active", "Active"),
            "code": {"text": "Feels dizzy when standing up quickly"},
            "subject": subject,
        },
        {
            "resourceType": "Condition",
            "id": "cond-odd-error",
            "verificationStatus": _cc(COND_VER, "entered-in-error", "Entered in Error"),
            "code": _cc(SNOMED, "38341003", "Hypertensive disorder, systemic arterial"),
            "subject": subject,
            "onsetDateTime": "2019",
        },
    ]


def generate(seed: int, anchor: date | datetime | None = None) -> list[dict]:
    """All sandbox resources, deterministically from `seed` and `anchor` (see `anchor_at`)."""
    b = _Builder(seed, anchor_at(anchor))
    for pid, family, given, gender, _login in PRACTITIONERS:
        b.resources.append(_practitioner(pid, family, given, gender))
    for n, pat in enumerate(PATIENTS, start=1):
        pid, family, given, gender, birth, conds, kind = pat
        b.resources.append(_patient(pid, family, given, gender, birth, n))
        if kind == "empty":
            continue
        if kind == "odd":
            _odd_patient(b, pid)
            continue
        prof = _profile(pat, b.rng)
        _clinical_history(b, pid, conds, kind, prof)
    corpus.generate(b.resources, seed, b.anchor)
    return b.resources


def _clinical_history(b: _Builder, pid: str, conds: list[str], kind: str, prof: dict) -> None:
    rng = b.rng
    now = b.anchor
    pracs = ["prac-smith", "prac-jones", "prac-patel"]
    encounters: list[tuple[str, datetime]] = []
    # ~4 years of visits, roughly every 4-7 months, plus an ED visit and an admission.
    t = now - timedelta(days=4 * 365 + rng.randint(0, 60))
    visits: list[tuple[datetime, tuple[str, str]]] = []
    # The high-volume patient's last weighing is a clinic visit BROOKS_LAST_WEIGHED days ago,
    # with months of home-monitoring vitals after it (see _many_observations).
    last_visit = now - timedelta(days=BROOKS_LAST_WEIGHED if kind == "many" else 30)
    while t < last_visit:
        visits.append((t, ENCOUNTER_CLASSES[0]))
        t += timedelta(days=rng.randint(120, 210))
    if kind == "many":
        visits[-1] = (last_visit, ENCOUNTER_CLASSES[0])
    visits.append((now - timedelta(days=rng.randint(200, 700)), ENCOUNTER_CLASSES[2]))
    visits.append((now - timedelta(days=rng.randint(300, 900)), ENCOUNTER_CLASSES[1]))
    visits.sort(key=lambda v: v[0])
    for i, (start, cls) in enumerate(visits):
        eid = f"enc-{pid[4:]}-{i + 1}"
        start = start.replace(hour=8 + rng.randint(0, 8), minute=rng.choice([0, 15, 30, 45]))
        length = {"AMB": timedelta(minutes=30), "EMER": timedelta(hours=5), "IMP": timedelta(days=3)}[cls[0]]
        b.resources.append(_encounter(eid, pid, cls, start, start + length, rng.choice(pracs)))
        encounters.append((eid, start))
        b.vitals(pid, eid, start + timedelta(minutes=10), prof)
        if cls[0] == "IMP":
            for d in range(1, 3):
                b.vitals(pid, eid, start + timedelta(days=d), prof)
        panels = []
        if cls[0] != "AMB" or i % 2 == 0:
            panels += ["cbc", "bmp"]
        if i % 3 == 0:
            panels.append("lipid")
        if "dm2" in conds or i % 4 == 1:
            panels.append("a1c")
        for panel in panels:
            made = b.labs(pid, eid, start + timedelta(minutes=40), panel, prof)
            if pid in REPORTING:
                b.report(f"dr-{pid[4:]}-{i + 1}-{panel}", panel, made)
    # Today's visit, still open: the encounter the simulated EHR launches with.
    current = f"enc-{pid[4:]}-current"
    start = now - timedelta(minutes=50)
    b.resources.append(_encounter(current, pid, ENCOUNTER_CLASSES[0], start, None, "prac-smith"))
    # No weighing today for the high-volume patient: its latest weight stays months old.
    b.vitals(pid, current, start + timedelta(minutes=5), dict(prof, anthro=False) if kind == "many" else prof)
    for n, key in enumerate(conds):
        eid, when = encounters[min(n, len(encounters) - 1)]
        b.resources.append(_condition(f"cond-{pid[4:]}-{n + 1}", pid, key, when, eid))
    if kind == "many":
        _many_observations(b, pid, prof)


def _many_observations(b: _Builder, pid: str, prof: dict) -> None:
    """Home-monitoring vitals every 4 hours for ~11 months up to 2 hours before the anchor:
    10,000 observations (BP, HR, RR, temperature, SpO2; never weight, height or BMI)."""
    last = b.anchor - timedelta(hours=2)
    prof = dict(prof, anthro=False)
    for i in range(BROOKS_MONITORING_SETS - 1, -1, -1):
        b.vitals(pid, None, last - timedelta(hours=4 * i), prof)
