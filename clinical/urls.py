from django.urls import path

from clinical import views

app_name = "clinical"

urlpatterns = [
    path("c/<str:handle>/", views.dashboard, name="dashboard"),
    path("c/<str:handle>/panel/<str:name>/", views.panel, name="panel"),
    path("c/<str:handle>/patients/", views.patient_search, name="patient_search"),
    path("c/<str:handle>/p/<str:patient_id>/", views.patient_dashboard, name="patient_dashboard"),
    path("c/<str:handle>/p/<str:patient_id>/panel/<str:name>/", views.patient_panel, name="patient_panel"),
]
