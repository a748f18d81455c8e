"""Admin registrations. The audit trail's admin lives in its own module."""

from smartapp import audit_admin  # noqa: F401  (registers AuditEventAdmin)
