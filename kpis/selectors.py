"""Reads of KPIs and measurements for pages, the API and tasks, and their access doors:
`kpi_get(pk, user)` answers 404 for a KPI the user may not see, `kpis_visible_to(user)` lists
only the visible ones; measurements are reached through their KPI."""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db import connection
from django.db.models import (
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from bizdevops import search
from initiatives.models import Initiative, Phase, Status
from initiatives.selectors import Card, decorates_cards, limit_to_visible, search_keys
from kpis import buckets
from kpis.health import BY_SEVERITY, Health, kpi_health, latest_health_severity
from kpis.models import KPI, Measurement, Resolution

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
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(weeks=1),
    "month": dt.timedelta(days=28),
}
MAX_BUCKETS = 10_000


class TooManyBuckets(Exception):
    """The range holds more than MAX_BUCKETS buckets of the chosen size."""


def _whole_hour_offsets(
    zone: dt.tzinfo, start: dt.datetime | None, end: dt.datetime | None
) -> bool:
    """Whether the zone's UTC offset is a whole number of hours over the range (sampled every
    ~2 weeks: offsets change at most a few times a year), so its local hours, days, weeks and
    months are made of whole UTC hours."""
    moment = start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    last = end or timezone.now() + dt.timedelta(days=1)
    step = dt.timedelta(days=14)
    while True:
        offset = moment.astimezone(zone).utcoffset() or dt.timedelta()
        if offset % dt.timedelta(hours=1):
            return False
        if moment >= last:
            return True
        moment = min(moment + step, last)


def _calendar_resolution(
    bucket: str, start: dt.datetime | None, end: dt.datetime | None
) -> str | None:
    """The coarsest rollups whose buckets lie wholly inside one calendar bucket of the current
    time zone: daily (UTC) ones for days, weeks and months in UTC; hourly ones in a zone whose
    offset is whole hours; else none (the raw values)."""
    if timezone.get_current_timezone_name() in ("UTC", "Etc/UTC"):
        return Resolution.HOUR if bucket == "hour" else Resolution.DAY
    zone = timezone.get_current_timezone()
    return Resolution.HOUR if _whole_hour_offsets(zone, start, end) else None


def calendar_buckets(
    kpi: KPI, bucket: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[list[Any]]:
    """[start, avg, min, max, count] per calendar bucket (hour, day, week, month, in the
    current time zone) of the KPI's finite values in [start, end), at most MAX_BUCKETS of
    them, else TooManyBuckets. One query, over the rollups for the whole hours or days."""
    size = CALENDAR_BUCKETS[bucket]
    if start and end and (end - start) / size > MAX_BUCKETS:
        raise TooManyBuckets
    parts = buckets.pieces(start, end, _calendar_resolution(bucket, start, end))
    trunc_sql, trunc_params = connection.ops.datetime_trunc_sql(  # type: ignore[str-unpack]
        bucket, "u.t", (), timezone.get_current_timezone_name()
    )  # (stubs say str; Django returns (sql, params))
    rows = buckets.aggregate([kpi.pk], parts, trunc_sql, trunc_params, limit=MAX_BUCKETS + 1)
    if len(rows) > MAX_BUCKETS:
        raise TooManyBuckets
    zone = timezone.get_current_timezone()
    results = []
    for _, moment, avg, low, high, n in rows:
        # As TruncDay & co. convert: the truncated local time, aware in the current zone.
        local = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        results.append([timezone.make_aware(local, zone).isoformat(), avg, low, high, n])
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


@dataclass(frozen=True)
class Series:
    bucket_seconds: int
    points: list[tuple[int, float, float, float, int]]  # start, avg, min, max, count


def chart_buckets(span_seconds: float, max_points: int = MAX_POINTS) -> tuple[int, str | None]:
    """The bucket size (seconds) of a chart over `span_seconds` with at most `max_points`
    buckets, and the rollups it reads (None: the raw values). From two hours up, the size is
    a whole number of hours (days from two days up) so that each bucket is made of whole
    hourly (daily) rollups, at the cost of up to a third fewer points; below that, raw."""
    seconds = max(1, math.ceil(max(span_seconds, 1.0) / max(max_points - 1, 1)))
    for resolution, unit in ((Resolution.DAY, 86_400), (Resolution.HOUR, 3_600)):
        if seconds >= 2 * unit:
            return math.ceil(seconds / unit) * unit, resolution
    return seconds, None


def series(kpi: KPI, start: dt.datetime, end: dt.datetime, max_points: int = MAX_POINTS) -> Series:
    """Measurements of a KPI in [start, end), downsampled in SQL to at most `max_points`
    buckets with avg, min and max, whatever the number of measurements."""
    return series_many([kpi], start, end, max_points)[kpi.pk]


def series_many(
    kpis: list[KPI], start: dt.datetime, end: dt.datetime, max_points: int = MAX_POINTS
) -> dict[int, Series]:
    """`series` for several KPIs at once, in one query (one GROUP BY KPI and bucket): from
    the rollups for long ranges (their whole hours or days), the raw values otherwise and at
    the range's ragged ends."""
    seconds, resolution = chart_buckets((end - start).total_seconds(), max_points)
    points: dict[int, list[tuple[int, float, float, float, int]]] = {k.pk: [] for k in kpis}
    if kpis:
        parts = buckets.pieces(start, end, resolution)
        for kpi_id, bucket, avg, low, high, n in buckets.aggregate(
            [k.pk for k in kpis], parts, buckets.epoch_bucket_sql(seconds)
        ):
            points[kpi_id].append((buckets.epoch_seconds(bucket), avg, low, high, n))
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
    # Why there is no value yet (empty when there is one): `no_value_reason`.
    missing: str = ""

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def _job_enabled() -> Subquery:
    """Whether the KPI's job is enabled (NULL: it has none). The job model is reached through
    the relation's name because `jobs` sits above this app."""
    job_model = KPI._meta.get_field("job").related_model
    jobs = job_model._default_manager.filter(kpi=OuterRef("pk")).order_by()
    return Subquery(jobs.values("enabled")[:1])


def no_value_reason(initiative: Initiative, job_enabled: bool | None) -> str:
    """Why a KPI has no value yet, in the words a stakeholder reads on its tile: values come
    from its job, which runs only while the initiative is active in Ops."""
    if initiative.status != Status.ACTIVE:
        return f"The initiative is {Status(initiative.status).label.lower()}: its jobs do not run."
    if initiative.phase != Phase.OPS:
        return (
            f"The initiative is in {Phase(initiative.phase).label}, not in Ops yet: "
            "jobs run only in Ops."
        )
    if job_enabled is None:
        return "There is no job computing it yet (engineers register one on the Ops page)."
    if not job_enabled:
        return "Its job is disabled."
    return "Its job has not run yet."


def tiles(kpis: QuerySet[KPI], now: dt.datetime | None = None) -> list[Tile]:
    """Each KPI's latest value, the one before it (the previous period), its health and
    whether it is stale, in a fixed number of queries."""
    now = now or timezone.now()
    latest = Measurement.objects.filter(kpi=OuterRef("pk")).order_by("-as_of")
    query: QuerySet[KPI] = kpis.select_related("initiative").annotate(
        last_value=Subquery(latest.values("value")[:1]),
        last_as_of=Subquery(latest.values("as_of")[:1]),
        previous_value=Subquery(latest.values("value")[1:2]),
        job_enabled=_job_enabled(),
    )
    for rule in _staleness_rules:
        query = rule.prepare(query)
    result = []
    for kpi in query.order_by("initiative_id", "name"):
        last_as_of = kpi.last_as_of  # type: ignore[attr-defined]
        value = kpi.last_value  # type: ignore[attr-defined]
        running = kpi.initiative.phase == Phase.OPS and kpi.initiative.status == Status.ACTIVE
        result.append(
            Tile(
                kpi=kpi,
                value=value,
                as_of=last_as_of,
                previous=kpi.previous_value,  # type: ignore[attr-defined]
                health=kpi_health(kpi, value),
                stale=running
                and any(rule.is_stale(kpi, last_as_of, now) for rule in _staleness_rules),
                missing=""
                if value is not None
                else no_value_reason(kpi.initiative, kpi.job_enabled),  # type: ignore[attr-defined]
            )
        )
    return result


@functools.cache
def _worst_latest_severity() -> Max:
    # Built once: a query copies an expression it takes in (building it took a tenth of the
    # board's query building).
    return Max(latest_health_severity())


def board_health(initiatives: Sequence[Initiative | Card]) -> dict[int, Health]:
    """The worst KPI health per initiative that has KPIs, in one query: each KPI's latest
    value judged in SQL (`health_severity`), the worst kept per initiative. Staleness is
    not a health and is left to the tiles."""
    if not initiatives:
        return {}
    rows = (
        KPI.objects.filter(initiative_id__in=[i.pk for i in initiatives])
        .order_by()
        .values("initiative_id")
        .annotate(severity=_worst_latest_severity())
        .values_list("initiative_id", "severity")
    )
    return {pk: BY_SEVERITY[severity] for pk, severity in rows}


@decorates_cards
def kpi_health_on_cards(cards: list[Card]) -> None:
    """Board cards show the worst status of the initiative's KPIs."""
    health = board_health(cards)
    for card in cards:
        card.kpi_health = health.get(card.pk)  # type: ignore[attr-defined]


# The global search (bizdevops/search.py, docs/search.md) ---------------------------------------


@search.provider("kpis", label="KPIs", order=20)
def search_kpis(query: str, user: AnyUser, limit: int) -> search.Found:
    """Visible KPIs with every word of the query in their name (or of an initiative whose key
    is in it), in one query."""
    keys, words = search_keys(search.terms(query))
    matched = Q(initiative_id__in=keys)
    if words:
        matched |= functools.reduce(operator.and_, (Q(name__icontains=w) for w in words))
    rows = list(
        kpis_visible_to(user).filter(matched).order_by("initiative_id", "name")[: limit + 1]
    )
    hits = [
        search.Hit(
            title=kpi.name,
            url=reverse("initiative-kpis", args=[kpi.initiative.key]) + f"#chart-{kpi.pk}",
            detail=f"{kpi.initiative.key} {kpi.initiative.title}"
            + (f" · {kpi.unit}" if kpi.unit else ""),
        )
        for kpi in rows[:limit]
    ]
    return search.Found(hits, more=len(rows) > limit)
