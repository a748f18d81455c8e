from django.urls import path

from clinical import views

app_name = "clinical"

urlpatterns = [
    path("c/<str:handle>/", views.dashboard, name="dashboard"),
]
