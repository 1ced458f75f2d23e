from __future__ import annotations

from django.urls import path

from kpis import views

urlpatterns = [
    path("initiatives/<str:key>/kpis/", views.kpi_add, name="kpi-add"),
    path("initiatives/<str:key>/dashboard/", views.initiative_kpis, name="initiative-kpis"),
    path("kpis/", views.kpi_overview, name="kpi-overview"),
    path("dashboards/", views.dashboards, name="dashboards"),
    path("dashboards/units/<int:unit_id>/", views.unit_dashboard, name="unit-dashboard"),
    path("kpis/<int:kpi_id>/chart/", views.kpi_chart, name="kpi-chart"),
    path("kpis/<int:kpi_id>/edit/", views.kpi_edit, name="kpi-edit"),
    path("kpis/<int:kpi_id>/remove/", views.kpi_remove, name="kpi-remove"),
    path("kpis/<int:kpi_id>/export.csv", views.kpi_csv, name="kpi-csv"),
]
