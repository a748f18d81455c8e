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
