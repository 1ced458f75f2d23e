from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from bizdevops.api import TokenView
from bizdevops.preferences import MeView
from bizdevops.search_api import SearchAPI
from initiatives import api as initiatives
from jobs import api as jobs
from kpis import api as kpis
from phases import api as phases

KEY = "initiatives/<str:key>"

# ReDoc styles itself with styled-components, which inject <style> elements carrying no nonce,
# and runs its search in a worker made from a blob: URL. This page alone allows inline styles
# and blob: workers; its scripts stay 'self' only.
redoc = csp_update({"style-src": [UNSAFE_INLINE], "worker-src": ["blob:"]})(
    SpectacularRedocView.as_view(url_name="api-schema")
)

v1 = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("me/", MeView.as_view(), name="api-me"),
    path("business-units/", initiatives.BusinessUnitList.as_view(), name="api-business-units"),
    path("initiatives/", initiatives.InitiativeList.as_view(), name="api-initiatives"),
    path(f"{KEY}/", initiatives.InitiativeDetail.as_view(), name="api-initiative"),
    path(f"{KEY}/gate/", phases.Gate.as_view(), name="api-gate"),
    path(f"{KEY}/criteria/<slug:code>/", phases.CriterionTick.as_view(), name="api-criterion"),
    path(f"{KEY}/decisions/", phases.DecisionList.as_view(), name="api-decisions"),
    path(f"{KEY}/history/", phases.History.as_view(), name="api-history"),
    path(f"{KEY}/handover/", initiatives.Handover.as_view(), name="api-handover"),
    path(f"{KEY}/members/", initiatives.MemberList.as_view(), name="api-members"),
    path(
        f"{KEY}/members/<int:member_id>/",
        initiatives.MemberDetail.as_view(),
        name="api-member",
    ),
    path(f"{KEY}/iterations/", initiatives.IterationList.as_view(), name="api-iterations"),
    path("kpis/", kpis.KPIList.as_view(), name="api-kpis"),
    path("kpis/<int:pk>/", kpis.KPIDetail.as_view(), name="api-kpi"),
    path("kpis/<int:pk>/measurements/", kpis.Measurements.as_view(), name="api-measurements"),
    path("data-sources/", jobs.DataSourceList.as_view(), name="api-data-sources"),
    path("jobs/", jobs.JobList.as_view(), name="api-jobs"),
    path("jobs/<int:pk>/", jobs.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:pk>/run/", jobs.JobRun.as_view(), name="api-job-run"),
    path("jobs/<int:pk>/runs/", jobs.JobRuns.as_view(), name="api-job-runs"),
    path("runs/<int:pk>/", jobs.RunDetail.as_view(), name="api-run-detail"),
    path("search/", SearchAPI.as_view(), name="api-search"),
]

urlpatterns = [
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in v1],
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", redoc, name="api-redoc"),
]
