"""Reads for the Ops page, the API and tasks."""

from __future__ import annotations

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from initiatives.models import FINAL_STATUSES, Initiative, Phase
from kpis.models import KPI, Job, Measurement, Run

RECENT_RUNS = 5


def kpis_with_jobs() -> QuerySet[KPI]:
    """KPIs with their job, the job's recent runs and the latest value, in a fixed number of
    queries whatever the number of KPIs or runs."""
    latest = Measurement.objects.filter(kpi=OuterRef("pk")).order_by("-as_of")
    return (
        KPI.objects.select_related("job", "job__data_source")
        .annotate(
            last_value=Subquery(latest.values("value")[:1]),
            last_as_of=Subquery(latest.values("as_of")[:1]),
        )
        .prefetch_related(
            Prefetch(
                "job__runs",
                queryset=Run.objects.order_by("-scheduled_for", "-id")[:RECENT_RUNS],
                to_attr="recent_runs",
            )
        )
        .order_by("name")
    )


def ops_initiatives() -> QuerySet[Initiative]:
    """Open initiatives in Dev or Ops, each with its KPIs (and their jobs and runs)."""
    return (
        Initiative.objects.filter(phase__in=[Phase.DEV, Phase.OPS])
        .exclude(status__in=FINAL_STATUSES)
        .select_related("business_unit", "accountable")
        .prefetch_related(Prefetch("kpis", queryset=kpis_with_jobs()))
        .order_by("-phase", "id")
    )


def job_get(pk: int) -> Job:
    return Job.objects.select_related(
        "kpi", "kpi__initiative", "kpi__initiative__business_unit", "data_source"
    ).get(pk=pk)


def run_history(job: Job, limit: int = 50) -> list[Run]:
    return list(job.runs.select_related("requested_by").order_by("-scheduled_for", "-id")[:limit])
