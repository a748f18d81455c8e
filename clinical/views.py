"""Placeholder: the dashboard issue replaces this view."""

from django.http import HttpResponse


def dashboard(request, handle):
    return HttpResponse(status=501)
