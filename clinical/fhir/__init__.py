"""FHIR for the dashboard: the client (`client`), its errors (`errors`), tolerant R4B parsing
(`parsing`) and the streaming search-page reader (`bundles`).

The names the rest of the project uses are re-exported here, so `from clinical import fhir` and
`fhir.FhirClient`, `fhir.FhirError` read as one API. A test patching a name patches it in the
module that looks it up (`clinical.fhir.client.parse_resource`), not here.
"""

from __future__ import annotations

from clinical.fhir.bundles import read_page
from clinical.fhir.client import ID_PATTERN, Access, FhirClient, SearchResult, session_for
from clinical.fhir.errors import (
    BadRequest,
    FhirError,
    Forbidden,
    Gone,
    InvalidResponse,
    NotFound,
    RateLimited,
    RefusedURL,
    ServerError,
    Timeout,
    Unauthorized,
    outcome_diagnostics,
)
from clinical.fhir.parsing import load_models, parse_resource

__all__ = [
    "ID_PATTERN",
    "Access",
    "BadRequest",
    "FhirClient",
    "FhirError",
    "Forbidden",
    "Gone",
    "InvalidResponse",
    "NotFound",
    "RateLimited",
    "RefusedURL",
    "SearchResult",
    "ServerError",
    "Timeout",
    "Unauthorized",
    "load_models",
    "outcome_diagnostics",
    "parse_resource",
    "read_page",
    "session_for",
]
