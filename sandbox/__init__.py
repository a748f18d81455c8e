"""Sandbox EHR: a strict SMART App Launch 2.2 authorization server and FHIR R4 API (dev/test only).

The package is an app (installed in the main project when SANDBOX_ENABLED, so its management
commands are reachable) and its own Django project (`sandbox.settings`, `sandbox.urls`). Models
exist only under the sandbox settings, so the main database never gets sandbox tables.
"""
