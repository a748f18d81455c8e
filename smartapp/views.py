"""Placeholder: the launch core replaces these views."""

from django.http import HttpResponse


def home(request):
    return HttpResponse("SMART dashboard")


def launch(request):
    return HttpResponse(status=501)


def callback(request):
    return HttpResponse(status=501)


def standalone(request, slug):
    return HttpResponse(status=501)


def logout(request):
    return HttpResponse(status=501)


def jwks(request):
    return HttpResponse(status=501)
