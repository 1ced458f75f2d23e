"""Reads for the Ops pages, the API and tasks, and the access doors of data sources, jobs
and runs: `job_get(pk, user)` and `run_get(pk, user)` answer 404 for what the user may not see
(through the initiative of the job's KPI); `..._visible_to(user)` list only what they may."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from initiatives.models import FINAL_STATUSES, Initiative, Phase
from initiatives.selectors import limit_to_visible
from jobs import permissions, scheduling
from jobs.models import DataSource, Job, Run
from kpis.models import KPI, Measurement
from kpis.selectors import judges_staleness

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser

RECENT_RUNS = 5


def data_sources_visible_to(user: AnyUser) -> QuerySet[DataSource]:
    """The data sources a user may pick for a job (names and kinds; URLs are never shown)."""
    if permissions.picks_data_sources(user):
        return DataSource.objects.order_by("name")
    return DataSource.objects.none()


def data_source_get(pk: int, user: AnyUser) -> DataSource:
    try:
        return data_sources_visible_to(user).get(pk=pk)
    except DataSource.DoesNotExist:
        raise Http404("No such data source.") from None


def jobs_visible_to(user: AnyUser) -> QuerySet[Job]:
    jobs = Job.objects.select_related(
        "kpi", "kpi__initiative", "kpi__initiative__business_unit", "data_source"
    )
    return limit_to_visible(jobs, user, "kpi__initiative__")


def job_get(pk: int, user: AnyUser) -> Job:
    """The job as the user may see it, else 404."""
    try:
        return jobs_visible_to(user).get(pk=pk)
    except Job.DoesNotExist:
        raise Http404("No such job.") from None


def job_of(kpi: KPI) -> Job | None:
    """The job of a KPI the caller fetched through `kpi_get`, if it has one."""
    return Job.objects.filter(kpi=kpi).first()


def runs_visible_to(user: AnyUser) -> QuerySet[Run]:
    runs = Run.objects.select_related("job", "job__kpi", "job__kpi__initiative")
    return limit_to_visible(runs, user, "job__kpi__initiative__")


def run_get(pk: int, user: AnyUser) -> Run:
    """The run as the user may see it (through its job's initiative), else 404."""
    try:
        return runs_visible_to(user).get(pk=pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None


def runs_of(job: Job) -> QuerySet[Run]:
    """The runs of a job the caller fetched through `job_get`, newest first."""
    return job.runs.order_by("-scheduled_for", "-id")


def run_history(job: Job, limit: int = 50) -> list[Run]:
    return list(runs_of(job).select_related("requested_by")[:limit])


def _kpis_with_jobs() -> QuerySet[KPI]:
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


def ops_initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    """Open initiatives in Dev or Ops that the user may see, each with its KPIs (and their
    jobs and runs)."""
    initiatives = (
        Initiative.objects.filter(phase__in=[Phase.DEV, Phase.OPS])
        .exclude(status__in=FINAL_STATUSES)
        .select_related("business_unit", "accountable")
        .prefetch_related(Prefetch("kpis", queryset=_kpis_with_jobs()))
        .order_by("-phase", "id")
    )
    return limit_to_visible(initiatives, user)


class _JobSchedule:
    """A KPI is stale when its enabled job's schedule has fired three times since its last
    value (`scheduling.is_stale`); the tiles' query reads each KPI's job along."""

    def prepare(self, kpis: QuerySet[KPI]) -> QuerySet[KPI]:
        return kpis.select_related("job")

    def is_stale(self, kpi: KPI, last_as_of: dt.datetime | None, now: dt.datetime) -> bool:
        return scheduling.is_stale(getattr(kpi, "job", None), last_as_of, now)


judges_staleness(_JobSchedule())
