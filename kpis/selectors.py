"""Reads of KPIs and measurements for pages, the API and tasks, and their access doors:
`kpi_get(pk, user)` answers 404 for a KPI the user may not see, `kpis_visible_to(user)` lists
only the visible ones; measurements are reached through their KPI."""

from __future__ import annotations

import datetime as dt
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db.models import (
    BigIntegerField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import TruncDay, TruncHour, TruncMonth, TruncWeek
from django.http import Http404
from django.utils import timezone

from initiatives.models import Initiative, Phase, Status
from initiatives.selectors import decorates_cards, limit_to_visible
from kpis.health import Health, kpi_health, worst
from kpis.models import KPI, Measurement

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser


def kpis_visible_to(user: AnyUser) -> QuerySet[KPI]:
    return limit_to_visible(KPI.objects.select_related("initiative"), user, "initiative__")


def kpi_get(pk: int, user: AnyUser) -> KPI:
    """The KPI as the user may see it (through its initiative), else 404."""
    try:
        return kpis_visible_to(user).select_related("initiative__business_unit").get(pk=pk)
    except KPI.DoesNotExist:
        raise Http404("No such KPI.") from None


def measurements_of(
    kpi: KPI, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> QuerySet[Measurement]:
    """The values of a KPI the caller fetched through `kpi_get`, in [start, end)."""
    rows = Measurement.objects.filter(kpi=kpi)
    if start is not None:
        rows = rows.filter(as_of__gte=start)
    if end is not None:
        rows = rows.filter(as_of__lt=end)
    return rows


# Buckets by calendar unit (the API) -----------------------------------------------------------

CALENDAR_BUCKETS = {
    "hour": (TruncHour, dt.timedelta(hours=1)),
    "day": (TruncDay, dt.timedelta(days=1)),
    "week": (TruncWeek, dt.timedelta(weeks=1)),
    "month": (TruncMonth, dt.timedelta(days=28)),
}
MAX_BUCKETS = 10_000


# The average is a SUM of the values scaled down by 2**64, divided by the count and scaled back
# up. Scaling by a power of two is exact (short of values below 1e-288), so averages are those
# of the plain sum, but a sum of finite doubles can no longer overflow: it would take 2**64
# values near the largest double in one bucket. Plain AVG of two rows of 1e308 is an overflow
# error on PostgreSQL (whose AVG also sums squares, so scaling alone would not do) and Infinity
# on SQLite, which made every chart of the KPI a 500. Rows that are not finite numbers
# (Infinity or NaN written before values were bounded) are left out.
_SCALE = 2.0**64
_LARGEST = sys.float_info.max


def _aggregated(rows: QuerySet[Measurement], *keys: str) -> QuerySet[Any]:
    """avg, min, max and count of the finite values per `keys` (annotated bucket columns), in
    key order: the one bucketing query behind the API's buckets and the charts."""
    scaled_sum = Sum(F("value") / Value(_SCALE), output_field=FloatField())
    return (
        rows.filter(value__gte=-_LARGEST, value__lte=_LARGEST)
        .values(*keys)
        .annotate(
            avg=ExpressionWrapper(
                scaled_sum / Count("id") * Value(_SCALE), output_field=FloatField()
            ),
            low=Min("value"),
            high=Max("value"),
            n=Count("id"),
        )
        .order_by(*keys)
    )


class TooManyBuckets(Exception):
    """The range holds more than MAX_BUCKETS buckets of the chosen size."""


def calendar_buckets(
    kpi: KPI, bucket: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[list[Any]]:
    """[start, avg, min, max, count] per calendar bucket (hour, day, week, month) of the KPI's
    values in [start, end), at most MAX_BUCKETS of them, else TooManyBuckets."""
    trunc, size = CALENDAR_BUCKETS[bucket]
    if start and end and (end - start) / size > MAX_BUCKETS:
        raise TooManyBuckets
    rows = measurements_of(kpi, start, end).annotate(start=trunc("as_of"))
    buckets = _aggregated(rows, "start")[: MAX_BUCKETS + 1]
    results = [[b["start"].isoformat(), b["avg"], b["low"], b["high"], b["n"]] for b in buckets]
    if len(results) > MAX_BUCKETS:
        raise TooManyBuckets
    return results


# Charts: fixed-size buckets -------------------------------------------------------------------

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
    rows = Measurement.objects.filter(
        kpi__in=[k.pk for k in kpis], as_of__gte=start, as_of__lt=end
    ).annotate(bucket=EpochBucket("as_of", seconds))
    points: dict[int, list[tuple[int, float, float, float, int]]] = {k.pk: [] for k in kpis}
    for r in _aggregated(rows, "kpi_id", "bucket"):
        points[r["kpi_id"]].append((int(r["bucket"]), r["avg"], r["low"], r["high"], r["n"]))
    return {pk: Series(seconds, values) for pk, values in points.items()}


# Tiles and health -----------------------------------------------------------------------------


# Whether a running KPI is stale depends on its recalculation job's schedule, which the
# `jobs` app knows: it registers a staleness rule (a KPI without a job is never stale). The
# rule first widens the tiles' query (say, to read each KPI's job in the same query), then
# answers per KPI of an initiative active in Ops, given the time of its last value.
class StalenessRule(Protocol):
    def prepare(self, kpis: QuerySet[KPI]) -> QuerySet[KPI]: ...

    def is_stale(self, kpi: KPI, last_as_of: dt.datetime | None, now: dt.datetime) -> bool: ...


_staleness_rules: list[StalenessRule] = []


def judges_staleness(rule: StalenessRule) -> StalenessRule:
    if rule not in _staleness_rules:
        _staleness_rules.append(rule)
    return rule


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
    whether it is stale, in a fixed number of queries."""
    now = now or timezone.now()
    latest = Measurement.objects.filter(kpi=OuterRef("pk")).order_by("-as_of")
    query: QuerySet[KPI] = kpis.select_related("initiative").annotate(
        last_value=Subquery(latest.values("value")[:1]),
        last_as_of=Subquery(latest.values("as_of")[:1]),
        previous_value=Subquery(latest.values("value")[1:2]),
    )
    for rule in _staleness_rules:
        query = rule.prepare(query)
    result = []
    for kpi in query.order_by("initiative_id", "name"):
        last_as_of = kpi.last_as_of  # type: ignore[attr-defined]
        running = kpi.initiative.phase == Phase.OPS and kpi.initiative.status == Status.ACTIVE
        result.append(
            Tile(
                kpi=kpi,
                value=kpi.last_value,  # type: ignore[attr-defined]
                as_of=last_as_of,
                previous=kpi.previous_value,  # type: ignore[attr-defined]
                health=kpi_health(kpi, kpi.last_value),  # type: ignore[attr-defined]
                stale=running
                and any(rule.is_stale(kpi, last_as_of, now) for rule in _staleness_rules),
            )
        )
    return result


def board_health(initiatives: list[Initiative]) -> dict[int, Health]:
    """The worst KPI health per initiative (a fixed number of queries for a whole board)."""
    by_initiative: dict[int, list[Health]] = {}
    for tile in tiles(KPI.objects.filter(initiative__in=[i.pk for i in initiatives])):
        by_initiative.setdefault(tile.kpi.initiative_id, []).append(tile.health)
    return {pk: worst(statuses) for pk, statuses in by_initiative.items()}


@decorates_cards
def kpi_health_on_cards(initiatives: list[Initiative]) -> None:
    """Board cards show the worst status of the initiative's KPIs."""
    health = board_health(initiatives)
    for initiative in initiatives:
        initiative.kpi_health = health.get(initiative.pk)  # type: ignore[attr-defined]
