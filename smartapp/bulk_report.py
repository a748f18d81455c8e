"""What a Bulk Data export says beyond its data: deletions since `_since`, and the EHR's issues.

A deletion is read only when it is exactly `Type/id` of a FHIR R4 resource; an OperationOutcome
is kept as the counts of its issues' severity and code (see ExportReport for why no text).
Reference: https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from smartapp import safety

# Reference: https://hl7.org/fhir/R4/resourcelist.html (FHIR R4 4.0.1)
RESOURCE_TYPES = frozenset(
    """Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement
    CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse
    ClinicalImpression CodeSystem Communication CommunicationRequest CompartmentDefinition
    Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
    Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal
    GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
    ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice
    Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
    MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
    MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
    Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
    PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
    RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
    RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
    SpecimenDefinition StructureDefinition StructureMap Subscription Substance
    SubstanceNucleicAcid SubstancePolymer SubstanceProtein SubstanceReferenceInformation
    SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
    TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription""".split()  # noqa: SIM905 - 146 names read better as words
)
# Reference: https://hl7.org/fhir/R4/valueset-issue-severity.html, valueset-issue-type.html
ISSUE_SEVERITIES = ("fatal", "error", "warning", "information")
ISSUE_CODES = frozenset(
    """invalid structure required value invariant security login unknown expired forbidden
    suppressed processing not-supported duplicate multiple-matches not-found deleted too-long
    code-invalid extension too-costly business-rule conflict transient lock-error no-store
    exception timeout incomplete throttled informational""".split()  # noqa: SIM905
)


@dataclass
class ExportReport:
    """What an export said beyond its data: unreadable deletion entries, the error files' issues.

    Of the EHR's OperationOutcomes only each issue's severity and code are kept, and only values
    of their FHIR value sets (anything else counts as severity "error" or code "other"): the
    `diagnostics`, `details.text`, `expression` and `location` are free text the EHR writes, which
    may name a patient ("MRN 123, Maria Garcia"), and no filter can be trusted to strip that from
    free text. The codes say enough for staff to know that a run is incomplete and roughly why;
    the details stay at the EHR, whose staff may see them.
    """

    deletions_skipped: int = 0
    issues: Counter[tuple[str, str]] = field(default_factory=Counter)  # (severity, code) -> n
    issue_lines_skipped: int = 0

    def add_issue(self, severity: Any, code: Any) -> None:
        severity = severity if severity in ISSUE_SEVERITIES else "error"  # 1..1 in FHIR: assume the worst
        self.issues[(severity, code if code in ISSUE_CODES else "other")] += 1

    def by_severity(self) -> dict[str, dict[str, int]]:
        """{"error": {"not-found": 2, "processing": 1}, ...}: plain JSON for the run's record."""
        counts: dict[str, dict[str, int]] = {}
        for (severity, code), n in sorted(self.issues.items()):
            counts.setdefault(severity, {})[code] = n
        return counts


def deleted_reference(entry: Any) -> tuple[str, str] | None:
    """`Type/id` of a DELETE entry, or None when the entry is not exactly that."""
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or request.get("method") != "DELETE":
        return None
    url = request.get("url")
    if not isinstance(url, str) or url.count("/") != 1:
        return None
    rtype, rid = url.split("/")
    if rtype not in RESOURCE_TYPES or not safety.FHIR_ID.match(rid):
        return None
    return rtype, rid
