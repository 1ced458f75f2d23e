from __future__ import annotations

from django.urls import path

from jobs import views

urlpatterns = [
    path("ops/", views.ops, name="ops"),
    path("ops/kpis/<int:kpi_id>/job/", views.job_create, name="job-create"),
    path("ops/kpis/<int:kpi_id>/schema/", views.job_schema, name="job-schema"),
    path("ops/jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("ops/jobs/<int:job_id>/toggle/", views.job_toggle, name="job-toggle"),
    path("ops/jobs/<int:job_id>/runs/", views.run_start, name="run-start"),
    path("ops/runs/<int:run_id>/", views.run_status, name="run-status"),
    path("ops/schedule-preview/", views.schedule_preview, name="schedule-preview"),
]
