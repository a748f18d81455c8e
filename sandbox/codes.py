"""The code systems the sandbox's generated data use (synthetic.py and corpus.py), named once."""

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
COND_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
MRN = "urn:oid:2.16.840.1.113883.19.5"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service section (LAB)
# Stands for the sandbox's FHIR base in stored bodies (an absolute reference): the base is known
# only when a request arrives, so the FHIR views put it in as they answer.
FHIR_BASE_TOKEN = "{fhir-base}"
