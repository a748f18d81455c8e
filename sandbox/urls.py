"""URLconf of the sandbox EHR process (ROOT_URLCONF of sandbox.settings)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("sandbox.routes")),
]
