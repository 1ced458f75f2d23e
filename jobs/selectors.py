"""Reads for the Ops pages, the API and tasks, and the access doors of data sources, jobs
and runs: `job_get(pk, user)` and `run_get(pk, user)` answer 404 for what the user may not see
(through the initiative of the job's KPI); `..._visible_to(user)` list only what they may."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import operator
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.urls import reverse
from redis.exceptions import RedisError

from bizdevops import search
from initiatives.models import FINAL_STATUSES, Initiative, Phase
from initiatives.selectors import limit_to_visible, search_keys
from jobs import permissions, scheduling, sources
from jobs.models import DataSource, DataSourceKind, Job, Run
from kpis.models import KPI, Measurement
from kpis.selectors import judges_staleness

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser

log = logging.getLogger(__name__)

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


def runs_filtered(job: Job, *, state: str = "", trigger: str = "") -> QuerySet[Run]:
    """The runs of a job (fetched through `job_get`), in a state and of a trigger when given;
    cursor pages walk them by `-scheduled_for` (one run per job and moment)."""
    runs = runs_of(job)
    if state:
        runs = runs.filter(state=state)
    if trigger:
        runs = runs.filter(trigger=trigger)
    return runs


def database_sources_visible_to(user: AnyUser) -> QuerySet[DataSource]:
    return data_sources_visible_to(user).filter(kind=DataSourceKind.DATABASE)


# The schema browser reads a data source's catalogue at most once per few minutes (per data
# source and URL): the job form asks on every change of the data source select.
SCHEMA_CACHE_SECONDS = 300
SCHEMA_TIMEOUT_SECONDS = 10


def data_source_schema(*, kpi: KPI, source_id: int | str, user: AnyUser) -> sources.Schema:
    """The tables and columns of a database data source, for the job form of a KPI (fetched
    through `kpi_get`): only for who may edit that KPI's job (PermissionDenied otherwise);
    the data source through its door (404). SourceError when it cannot be read."""
    permissions.can_operate.check(user, kpi.initiative)
    try:
        source = database_sources_visible_to(user).get(pk=int(source_id))
    except (DataSource.DoesNotExist, ValueError, TypeError):
        raise Http404("No such database data source.") from None
    key = f"jobs:schema:{source.pk}:{sources.url_version(source)}"
    try:
        cached = cache.get(key)
    except RedisError as error:  # the cache is a convenience: read the source itself
        log.warning("Schema cache not answering (%s).", error)
        cached = None
    if isinstance(cached, sources.Schema):
        return cached
    schema = sources.read_schema(source, timeout=SCHEMA_TIMEOUT_SECONDS)
    try:
        cache.set(key, schema, SCHEMA_CACHE_SECONDS)
    except RedisError as error:
        log.warning("Schema cache not answering (%s).", error)
    return schema


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


# The global search (bizdevops/search.py, docs/search.md) ---------------------------------------


@search.provider("jobs", label="Jobs", order=30)
def search_jobs(query: str, user: AnyUser, limit: int) -> search.Found:
    """Visible jobs whose KPI name, named calculation or data source holds every word of the
    query (or of an initiative whose key is in it), in one query."""
    keys, words = search_keys(search.terms(query))
    matched = Q(kpi__initiative_id__in=keys)
    if words:
        matched |= functools.reduce(
            operator.and_,
            (
                Q(kpi__name__icontains=w)
                | Q(calculation__icontains=w)
                | Q(data_source__name__icontains=w)
                for w in words
            ),
        )
    rows = list(
        jobs_visible_to(user)
        .filter(matched)
        .order_by("kpi__initiative_id", "kpi__name")[: limit + 1]
    )
    hits = [
        search.Hit(
            title=f"Job for {job.kpi.name}",
            url=reverse("job-detail", args=[job.pk]),
            detail=f"{job.kpi.initiative.key} {job.kpi.initiative.title} · "
            + ("enabled" if job.enabled else "disabled"),
        )
        for job in rows[:limit]
    ]
    return search.Found(hits, more=len(rows) > limit)
