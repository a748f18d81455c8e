"""The SMART launch endpoints. `/launch` and `/callback` are registered with EHRs verbatim."""

from django.urls import path

from smartapp import views

app_name = "smartapp"

urlpatterns = [
    path("", views.home, name="home"),
    path("launch", views.launch, name="launch"),
    path("callback", views.callback, name="callback"),
    path("standalone/<slug:slug>/", views.standalone, name="standalone"),
    path("logout", views.logout, name="logout"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
]
