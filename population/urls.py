from django.urls import path

from population import views

app_name = "population"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/<str:group>/", views.patients, name="patients"),
]
