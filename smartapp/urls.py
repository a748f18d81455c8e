"""Root URLconf: admin, the SMART launch endpoints (namespace `smartapp`), probes, dashboard."""

from django.contrib import admin
from django.urls import include, path

from smartapp import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("smartapp.launch_urls")),
    path("", include("clinical.urls")),
]

# Error pages with the app's header and the request id (Django's own render without the request).
handler400 = "smartapp.errors.bad_request"
handler403 = "smartapp.errors.permission_denied"
handler404 = "smartapp.errors.page_not_found"
handler500 = "smartapp.errors.server_error"
