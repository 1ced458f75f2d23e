from __future__ import annotations

from django.urls import path

from kpis import views

urlpatterns = [
    path("ops/", views.ops, name="ops"),
    path("ops/kpis/<int:kpi_id>/job/", views.job_create, name="job-create"),
    path("ops/jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("ops/jobs/<int:pk>/toggle/", views.job_toggle, name="job-toggle"),
    path("ops/jobs/<int:pk>/runs/", views.run_start, name="run-start"),
    path("ops/runs/<int:pk>/", views.run_status, name="run-status"),
    path("ops/schedule-preview/", views.schedule_preview, name="schedule-preview"),
    path("dashboards/", views.dashboards, name="dashboards"),
    path("dashboards/units/<int:pk>/", views.unit_dashboard, name="unit-dashboard"),
    path("initiatives/<str:key>/dashboard/", views.initiative_kpis, name="initiative-kpis"),
    path("kpis/<int:pk>/chart/", views.kpi_chart, name="kpi-chart"),
    path("kpis/<int:pk>/export.csv", views.kpi_csv, name="kpi-csv"),
]
