"""Names a clinician reads: short clinical names for known measures, SNOMED CT semantic tags
removed, encounter classes spelled out. The sender's full wording stays available for hover.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from clinical.measures import measure_for

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


# --- Names -------------------------------------------------------------------------------

# SNOMED CT semantic tags (the hierarchy in brackets at the end of a fully specified name).
# Reference: https://confluence.ihtsdotools.org/display/DOCEG/Semantic+Tag
_SEMANTIC_TAGS = (
    "administration method",
    "assessment scale",
    "attribute",
    "basic dose form",
    "body structure",
    "cell",
    "cell structure",
    "clinical drug",
    "core metadata concept",
    "disorder",
    "disposition",
    "dose form",
    "environment",
    "environment / location",
    "ethnic group",
    "event",
    "finding",
    "foundation metadata concept",
    "geographic location",
    "inactive concept",
    "intended site",
    "life style",
    "link assertion",
    "linkage concept",
    "medicinal product",
    "medicinal product form",
    "morphologic abnormality",
    "namespace concept",
    "navigational concept",
    "observable entity",
    "occupation",
    "organism",
    "person",
    "physical force",
    "physical object",
    "procedure",
    "product",
    "product name",
    "qualifier value",
    "racial group",
    "record artifact",
    "regime/therapy",
    "release characteristic",
    "religion/philosophy",
    "role",
    "situation",
    "social concept",
    "special concept",
    "specimen",
    "staging scale",
    "state of matter",
    "substance",
    "supplier",
    "transformation",
    "tumor staging",
    "unit of presentation",
)
_TAG_AT_END = re.compile(r"\s*\((?:" + "|".join(re.escape(t) for t in _SEMANTIC_TAGS) + r")\)\s*$")


@lru_cache(maxsize=4096)
def strip_semantic_tag(text: str) -> str:
    """Drop a SNOMED CT semantic tag at the end ("… (disorder)"); other parentheses stay."""
    return _TAG_AT_END.sub("", text or "").strip()


def clinical_name(
    text: str | None, codings: Sequence[tuple[str | None, str | None, str | None]]
) -> tuple[str, str]:
    """(short, full) for a CodeableConcept given as its text and [(system, code, display)].

    `full` is the longest text sent, for hover, and empty when it says no more than `short`.
    """
    text = (text or "").strip()
    texts = [text] + [(d or "").strip() for _s, _c, d in codings]
    longest = max(texts, key=len)
    measure = measure_for(c for s, c, _d in codings if c and s in (LOINC, None))
    if measure is not None:
        short = measure.name
    elif text:
        short = strip_semantic_tag(text)
    else:
        short = ""
        for system in (LOINC, SNOMED, ICD10CM, None):
            short = next(
                (d.strip() for s, _c, d in codings if d and d.strip() and (system is None or s == system)), ""
            )
            if short:
                break
        short = strip_semantic_tag(short)
        if not short:
            short = next((c for _s, c, _d in codings if c), "")
    return short, ("" if longest in ("", short) else longest)


# Short names of the common lab panels a DiagnosticReport is coded with (LOINC long names are
# "Basic metabolic 2000 panel - Serum or Plasma"). Reference: https://loinc.org (each code's page)
PANEL_NAMES = {
    "24320-4": "Basic metabolic panel",  # Basic metabolic 1998 panel - Serum or Plasma
    "24321-2": "Basic metabolic panel",  # Basic metabolic 2000 panel - Serum or Plasma
    "51990-0": "Basic metabolic panel",  # Basic metabolic panel - Blood
    "24323-8": "Comprehensive metabolic panel",  # Comprehensive metabolic 2000 panel - Serum or Plasma
    "24362-6": "Renal function panel",  # Renal function 2000 panel - Serum or Plasma
    "24325-3": "Hepatic function panel",  # Hepatic function 2000 panel - Serum or Plasma
    "58410-2": "CBC",  # CBC panel - Blood by Automated count
    "57021-8": "CBC with differential",  # CBC W Auto Differential panel - Blood
    "57782-5": "CBC with manual differential",  # CBC W Ordered Manual Differential panel - Blood
    "24331-1": "Lipid panel",  # Lipid 1996 panel - Serum or Plasma
    "57698-3": "Lipid panel",  # Lipid panel with direct LDL - Serum or Plasma
    "24348-5": "Thyroid function panel",  # Thyroid function 2000 panel - Serum or Plasma
    "24356-8": "Urinalysis",  # Urinalysis complete panel - Urine
    "24357-6": "Urinalysis (dipstick)",  # Urinalysis macro (dipstick) panel - Urine
}
# A LOINC panel's long name: the year of its definition and the specimen are not what a
# clinician calls it ("Electrolytes 1998 panel - Serum or Plasma" is an electrolytes panel).
_PANEL_YEAR = re.compile(r"\s(?:19|20)\d\d(?=\spanel\b)")
_PANEL_SPECIMEN = re.compile(r"\spanel\b(.*?)\s+-\s+[^-]+$")


def report_name(
    text: str | None, codings: Sequence[tuple[str | None, str | None, str | None]]
) -> tuple[str, str]:
    """(short, full) for a report's code: its text first (what the ordering system calls it)
    unless it only repeats a coding's display (Synthea copies the LOINC long name there), else
    the common panel's short name, else the test's (a single-test report: "HbA1c"), else the
    display with the panel year and specimen dropped. `full` as in `clinical_name`."""
    text = (text or "").strip()
    displays = [(d or "").strip() for _s, _c, d in codings]
    longest = max([text, *displays], key=len)
    panel = next((PANEL_NAMES[c] for s, c, _d in codings if c in PANEL_NAMES and s in (LOINC, None)), "")
    if text and text not in displays:
        short = strip_semantic_tag(text)
    elif panel:
        short = panel
    else:
        short, _full = clinical_name(None, codings)
        short = short or strip_semantic_tag(text)
        if any(s == LOINC and (d or "").strip() == short for s, _c, d in codings):
            short = _PANEL_SPECIMEN.sub(r" panel\1", _PANEL_YEAR.sub("", short))
    return short, ("" if longest in ("", short) else longest)


# Reference: https://terminology.hl7.org/ValueSet-v3-ActEncounterCode.html
_ENCOUNTER_CLASSES = {
    "AMB": "Ambulatory",
    "IMP": "Inpatient",
    "ACUTE": "Inpatient (acute)",
    "NONAC": "Inpatient (non-acute)",
    "EMER": "Emergency",
    "HH": "Home health",
    "VR": "Virtual",
    "OBSENC": "Observation",
    "PRENC": "Pre-admission",
    "SS": "Short stay",
    "FLD": "Field",
}


def encounter_class_name(system: str | None, code: str | None, display: str | None) -> str:
    """A readable encounter class: the sender's display when it is words, else the v3 ActCode's name."""
    display, code = (display or "").strip(), (code or "").strip()
    readable = display and display.lower() != code.lower() and any(ch.islower() for ch in display)
    if readable:
        return display[0].upper() + display[1:]
    if system and "ActCode" not in system:
        return display or code  # another code system's code: not ours to interpret
    return _ENCOUNTER_CLASSES.get(code.upper(), display or code)
