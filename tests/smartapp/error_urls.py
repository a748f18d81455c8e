"""The app's URLconf plus a view that crashes, to see the 500 page as a user would."""

from django.urls import path

from smartapp.urls import handler400, handler403, handler404, handler500  # noqa: F401
from smartapp.urls import urlpatterns as app_patterns


def boom(request):
    raise RuntimeError("boom for the 500 page test")


def forbidden(request):
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied


urlpatterns = [path("boom/", boom), path("forbidden/", forbidden), *app_patterns]
