"""Reads of the portfolio KPI overview (`/kpis/`): every KPI a user may see with its status,
grouped by business unit and initiative, worst first, filtered, counted and paged, in a fixed
number of queries whatever the number of KPIs (tests/kpis/test_overview.py counts them).

The whole filtered set is read once as narrow rows (ids, names, the severity of the latest
value judged in SQL, its time) to count, order and page it; staleness (the jobs app's rule)
is judged for the KPIs that can be stale (active in Ops) in one more query; only the page's
KPIs are then read whole (`tiles`) with their sparklines (one query over the rollups)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import (
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from initiatives.models import Initiative, Phase, Status
from initiatives.selectors import parse_key
from kpis import buckets, selectors
from kpis.health import BY_SEVERITY, Health, latest_health_severity
from kpis.models import KPI, Direction, Measurement, Resolution
from kpis.rollups import DAY, day_floor

if TYPE_CHECKING:
    from initiatives.models import BusinessUnit

PAGE_SIZE = 50
SPARK_DAYS = 30

# The statuses a user can filter by and that are counted at the top, worst first.
STATUSES = ("critical", "warning", "stale", "none", "healthy")
STATUS_LABELS = {
    "critical": "Critical",
    "warning": "Warning",
    "stale": "Stale",
    "healthy": "Healthy",
    "none": "No value",
}


@dataclass(frozen=True)
class Filters:
    unit: int | None = None
    phase: str = ""
    status: str = ""
    q: str = ""

    @classmethod
    def of(cls, params: Any) -> Filters:
        """From the query string; anything unknown is ignored (the whole portfolio)."""
        unit = params.get("unit", "")
        phase = params.get("phase", "")
        status = params.get("status", "")
        return cls(
            unit=int(unit) if unit.isascii() and unit.isdigit() and len(unit) < 10 else None,
            phase=phase if phase in Phase.values else "",
            status=status if status in STATUSES else "",
            q=params.get("q", "").strip()[:100],
        )

    def query(self, **changes: Any) -> dict[str, str]:
        values = {
            "unit": "" if self.unit is None else str(self.unit),
            "phase": self.phase,
            "status": self.status,
            "q": self.q,
        } | {k: str(v) for k, v in changes.items()}
        return {k: v for k, v in values.items() if v}


@dataclass
class Row:
    """A KPI of the overview with its tile, sparkline and change over the sparkline."""

    tile: selectors.Tile
    spark: list[tuple[int, float]]
    change: float | None
    better: bool | None  # None: no change to judge


@dataclass
class Group:
    unit: str
    initiative: Initiative
    rows: list[Row] = field(default_factory=list)


@dataclass
class Overview:
    groups: list[Group]
    counts: dict[str, int]
    total: int  # KPIs matching the filters but the status one
    matching: int  # ... and the status one
    page: int
    pages: int


def _filtered(kpis: QuerySet[KPI], filters: Filters) -> QuerySet[KPI]:
    kpis = kpis.exclude(initiative__status=Status.CANCELLED)
    if filters.unit is not None:
        kpis = kpis.filter(initiative__business_unit_id=filters.unit)
    if filters.phase:
        kpis = kpis.filter(initiative__phase=filters.phase)
    if filters.q:
        text = (
            Q(name__icontains=filters.q)
            | Q(initiative__title__icontains=filters.q)
            | Q(initiative__business_unit__name__icontains=filters.q)
        )
        number = parse_key(filters.q)
        if number is not None:
            text |= Q(initiative_id=number)
        kpis = kpis.filter(text)
    return kpis


def _health_status(severity: int) -> str:
    health = BY_SEVERITY[severity]
    return "none" if health == Health.UNKNOWN else str(health)


# Worst first: critical, warning, stale (whatever its last value said, if neither), no value,
# healthy.
_BADNESS = {"critical": 0, "warning": 1, "stale": 2, "none": 3, "healthy": 4}


_STALE = _BADNESS["stale"]
_STATUS_OF = {severity: _health_status(severity) for severity in BY_SEVERITY}


def _stale_ids(kpis: QuerySet[KPI], now: dt.datetime) -> set[int]:
    """The KPIs of `kpis` that the staleness rules (the jobs app's) call stale: only those of
    initiatives active in Ops can be, so only they are read whole, in one query."""
    if not selectors._staleness_rules:
        return set()
    latest = Measurement.objects.filter(kpi=OuterRef("pk")).order_by("-as_of")
    query: QuerySet[KPI] = (
        KPI.objects.filter(
            pk__in=kpis.values("pk"),
            initiative__phase=Phase.OPS,
            initiative__status=Status.ACTIVE,
        )
        .annotate(last_as_of=Subquery(latest.values("as_of")[:1]))
        .order_by()
    )
    for rule in selectors._staleness_rules:
        query = rule.prepare(query)
    return {
        kpi.pk
        for kpi in query
        if any(
            rule.is_stale(kpi, kpi.last_as_of, now)  # type: ignore[attr-defined]
            for rule in selectors._staleness_rules
        )
    }


def sparklines(
    kpi_ids: list[int], now: dt.datetime, days: int = SPARK_DAYS
) -> dict[int, list[tuple[int, float]]]:
    """The daily averages of the KPIs over the last `days` days (today's so far included),
    one query over the daily rollups (today's hours from the hourly ones, its last minutes
    raw), never the raw values of whole days."""
    result: dict[int, list[tuple[int, float]]] = {pk: [] for pk in kpi_ids}
    if not kpi_ids:
        return result
    start = day_floor(now) - DAY * (days - 1)
    parts = buckets.pieces(start, now, Resolution.DAY)
    for kpi_id, bucket, avg, _low, _high, _n in buckets.aggregate(
        kpi_ids, parts, buckets.epoch_bucket_sql(86_400)
    ):
        result[kpi_id].append((buckets.epoch_seconds(bucket), avg))
    return result


def _change(
    tile: selectors.Tile, spark: list[tuple[int, float]]
) -> tuple[float | None, bool | None]:
    """The latest value against the first day of the sparkline (30 days ago), and whether
    that is better in the KPI's direction."""
    if tile.value is None or len(spark) < 2:
        return None, None
    change = tile.value - spark[0][1]
    if change == 0:
        return 0.0, None
    return change, (change > 0) == (tile.kpi.direction == Direction.HIGHER)


def overview(
    kpis: QuerySet[KPI],
    filters: Filters,
    page: int = 1,
    now: dt.datetime | None = None,
    unit_names: dict[int, str] | None = None,
) -> Overview:
    """The overview of `kpis` (the user's visible ones) in four queries; `unit_names` (the
    units the caller lists anyway) orders units of equal badness by name."""
    now = now or timezone.now()
    kpis = _filtered(kpis, filters)
    narrow = list(
        kpis.order_by()
        .annotate(severity=latest_health_severity())
        .values_list("pk", "name", "initiative_id", "initiative__business_unit_id", "severity")
    )
    stale = _stale_ids(kpis, now)
    counts = dict.fromkeys(STATUSES, 0)
    wanted = filters.status
    # (unit, initiative, badness, name, pk) of the KPIs the status filter keeps. Plain tuples
    # and dict look-ups: this loop sees every KPI of the filtered set (20,000 in a portfolio).
    rows = []
    for pk, name, initiative_id, unit_id, severity in narrow:
        status, is_stale = _STATUS_OF[severity], pk in stale
        counts[status] += 1
        if is_stale:
            counts["stale"] += 1
        if not wanted or wanted == status or (wanted == "stale" and is_stale):
            bad = _BADNESS[status]
            if is_stale and bad > _STALE:
                bad = _STALE
            rows.append((unit_id, initiative_id, bad, name.lower(), pk))
    # Units by their worst KPI, the initiatives within by theirs, then their KPIs.
    unit_worst: dict[int, int] = {}
    initiative_worst: dict[int, int] = {}
    for unit_id, initiative_id, bad, _name, _pk in rows:
        if bad < unit_worst.get(unit_id, 99):
            unit_worst[unit_id] = bad
        if bad < initiative_worst.get(initiative_id, 99):
            initiative_worst[initiative_id] = bad
    names = unit_names or {}
    rows.sort(
        key=lambda r: (
            unit_worst[r[0]],
            names.get(r[0], ""),
            r[0],
            initiative_worst[r[1]],
            r[1],
            r[2],
            r[3],
        )
    )
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    ids = [row[4] for row in rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
    order = {pk: index for index, pk in enumerate(ids)}
    tiles = sorted(
        selectors.tiles(
            KPI.objects.filter(pk__in=ids).select_related("initiative__business_unit"), now
        ),
        key=lambda t: order[t.kpi.pk],
    )
    sparks = sparklines(ids, now)
    groups: list[Group] = []
    for tile in tiles:
        initiative = tile.kpi.initiative
        if not groups or groups[-1].initiative.pk != initiative.pk:
            groups.append(Group(unit=initiative.business_unit.name, initiative=initiative))
        spark = sparks[tile.kpi.pk]
        change, better = _change(tile, spark)
        groups[-1].rows.append(Row(tile=tile, spark=spark, change=change, better=better))
    return Overview(
        groups=groups,
        counts=counts,
        total=len(narrow),
        matching=len(rows),
        page=page,
        pages=pages,
    )


def units_for_filter(units: QuerySet[BusinessUnit]) -> list[tuple[int, str]]:
    return list(units.values_list("pk", "name"))
