"""Reads for the Ops page, the API and tasks."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Avg,
    BigIntegerField,
    Count,
    Func,
    Max,
    Min,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from initiatives.models import FINAL_STATUSES, BusinessUnit, Initiative, Phase, Status
from initiatives.permissions import sees_only_own_units
from initiatives.selectors import visible
from kpis.health import Health, is_stale, kpi_health, worst
from kpis.models import KPI, Job, Measurement, Run

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

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


def job_get(pk: int, user: User | AnonymousUser) -> Job:
    """The job as the user may see it (a stakeholder: only their units' jobs)."""
    jobs = Job.objects.select_related(
        "kpi", "kpi__initiative", "kpi__initiative__business_unit", "data_source"
    )
    return visible(jobs, user, "kpi__initiative__").get(pk=pk)


def run_history(job: Job, limit: int = 50) -> list[Run]:
    return list(job.runs.select_related("requested_by").order_by("-scheduled_for", "-id")[:limit])


# Dashboards ----------------------------------------------------------------------------------

RANGES = {
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
    "90d": dt.timedelta(days=90),
    "1y": dt.timedelta(days=365),
}
DEFAULT_RANGE = "7d"
MAX_POINTS = 500


class EpochBucket(Func):
    """The start (Unix seconds) of the fixed-size bucket a timestamp falls in, computed in SQL."""

    output_field = BigIntegerField()

    def __init__(self, expression: Any, seconds: int) -> None:
        super().__init__(expression)
        self.seconds = int(seconds)  # an int we computed: safe to inline

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        size = self.seconds
        if connection.vendor == "postgresql":
            template = f"(FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / {size}) * {size})::bigint"
        else:
            template = f"((CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) / {size}) * {size})"
        return super().as_sql(compiler, connection, template=template, **extra)


@dataclass(frozen=True)
class Series:
    bucket_seconds: int
    points: list[tuple[int, float, float, float, int]]  # start, avg, min, max, count


def series(kpi: KPI, start: dt.datetime, end: dt.datetime, max_points: int = MAX_POINTS) -> Series:
    """Measurements of a KPI in [start, end), downsampled in SQL to at most `max_points`
    buckets with avg, min and max, whatever the number of measurements."""
    return series_many([kpi], start, end, max_points)[kpi.pk]


def series_many(
    kpis: list[KPI], start: dt.datetime, end: dt.datetime, max_points: int = MAX_POINTS
) -> dict[int, Series]:
    """`series` for several KPIs at once, in one query (one GROUP BY KPI and bucket)."""
    span = max((end - start).total_seconds(), 1.0)
    seconds = max(1, math.ceil(span / max(max_points - 1, 1)))
    rows = (
        Measurement.objects.filter(kpi__in=[k.pk for k in kpis], as_of__gte=start, as_of__lt=end)
        .annotate(bucket=EpochBucket("as_of", seconds))
        .values("kpi_id", "bucket")
        .annotate(avg=Avg("value"), low=Min("value"), high=Max("value"), n=Count("id"))
        .order_by("kpi_id", "bucket")
    )
    points: dict[int, list[tuple[int, float, float, float, int]]] = {k.pk: [] for k in kpis}
    for r in rows:
        points[r["kpi_id"]].append((int(r["bucket"]), r["avg"], r["low"], r["high"], r["n"]))
    return {pk: Series(seconds, values) for pk, values in points.items()}


@dataclass(frozen=True)
class Tile:
    kpi: KPI
    value: float | None
    as_of: dt.datetime | None
    previous: float | None
    health: Health
    stale: bool

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def tiles(kpis: QuerySet[KPI], now: dt.datetime | None = None) -> list[Tile]:
    """Each KPI's latest value, the one before it (the previous period), its health and
    whether it is stale, in one query."""
    now = now or timezone.now()
    latest = Measurement.objects.filter(kpi=OuterRef("pk")).order_by("-as_of")
    rows = (
        kpis.select_related("job", "initiative")
        .annotate(
            last_value=Subquery(latest.values("value")[:1]),
            last_as_of=Subquery(latest.values("as_of")[:1]),
            previous_value=Subquery(latest.values("value")[1:2]),
        )
        .order_by("initiative_id", "name")
    )
    result = []
    for kpi in rows:
        job = getattr(kpi, "job", None)
        running = kpi.initiative.phase == Phase.OPS and kpi.initiative.status == Status.ACTIVE
        result.append(
            Tile(
                kpi=kpi,
                value=kpi.last_value,  # type: ignore[attr-defined]
                as_of=kpi.last_as_of,  # type: ignore[attr-defined]
                previous=kpi.previous_value,  # type: ignore[attr-defined]
                health=kpi_health(kpi, kpi.last_value),  # type: ignore[attr-defined]
                stale=running and is_stale(job, kpi.last_as_of, now),  # type: ignore[attr-defined]
            )
        )
    return result


def board_health(initiatives: list[Initiative]) -> dict[int, Health]:
    """The worst KPI health per initiative (one query for a whole board)."""
    by_initiative: dict[int, list[Health]] = {}
    for tile in tiles(KPI.objects.filter(initiative__in=[i.pk for i in initiatives])):
        by_initiative.setdefault(tile.kpi.initiative_id, []).append(tile.health)
    return {pk: worst(statuses) for pk, statuses in by_initiative.items()}


def visible_units(user: User | AnonymousUser) -> QuerySet[BusinessUnit]:
    """Business stakeholders see their own units' KPIs; everyone else sees all units."""
    units = BusinessUnit.objects.order_by("name")
    if sees_only_own_units(user):
        return units.filter(stakeholders=user.pk)
    return units
