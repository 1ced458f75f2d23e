"""Hourly and daily rollups of measurements (count, sum, min, max, first and last value per
UTC hour and day): kept right on every write by `rollups_refresh` in the writer's
transaction, rebuilt from the raw values by `rollups_rebuild` (the `rollups_rebuild` command).
Long-range charts and the bucket API read them (kpis/selectors.py); health, alerts and the
CSV export read the raw values."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from kpis.models import KPI, Measurement, Resolution, Rollup

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# Sums are of values divided by 2**64, as the raw charts sum them (see Rollup.sum_scaled).
SCALE = 2.0**64
_LARGEST = sys.float_info.max


def hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(moment: dt.datetime) -> dt.datetime:
    return hour_floor(moment).replace(hour=0)


Span = tuple[dt.datetime, dt.datetime]  # [lo, hi), whole UTC hours or days

# Spans per statement at most: a sparse push's hours are merged across the smallest gaps down
# to this many (the hours in between are recomputed too, which is right, only more work), so
# the statement stays a short OR of index ranges whatever the batch.
MAX_SPANS = 32


def _hour_spans(hours: list[dt.datetime]) -> list[Span]:
    spans: list[Span] = []
    for hour in hours:  # sorted, distinct
        if spans and spans[-1][1] == hour:
            spans[-1] = (spans[-1][0], hour + HOUR)
        else:
            spans.append((hour, hour + HOUR))
    if len(spans) > MAX_SPANS:
        gaps = sorted(range(1, len(spans)), key=lambda i: spans[i][0] - spans[i - 1][1])
        breaks = sorted(gaps[-(MAX_SPANS - 1) :])
        starts = [0, *breaks]
        ends = [*breaks, len(spans)]
        spans = [(spans[i][0], spans[j - 1][1]) for i, j in zip(starts, ends, strict=True)]
    return spans


def _day_spans(hour_spans: list[Span]) -> list[Span]:
    spans: list[Span] = []
    for lo, hi in hour_spans:
        day_lo, day_hi = day_floor(lo), day_floor(hi - HOUR) + DAY
        if spans and spans[-1][1] >= day_lo:
            spans[-1] = (spans[-1][0], max(spans[-1][1], day_hi))
        else:
            spans.append((day_lo, day_hi))
    return spans


def _within(column: str, spans: list[Span]) -> tuple[str, list[dt.datetime]]:
    sql = " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in spans)
    return f"({sql})", [moment for span in spans for moment in span]


# One statement: the hours of the spans from the raw values (index range scans on
# (kpi_id, as_of)); the days holding them from those fresh hours plus the day's other hours
# as already rolled up (kept right by this same statement: at most 23 small rows per day
# instead of up to a day of raw values); upsert both; delete the buckets of the spans that
# have no values any more. Values that are not finite numbers (written before values were
# bounded) are left out, as the charts leave them out. The DELETE and the INSERT touch
# disjoint rows (the DELETE only rows absent from `fresh`), as PostgreSQL requires of one
# statement. Plans seen with EXPLAIN ANALYZE: the spans are constants, not an array joined
# to (planned without statistics, such a join scanned the whole table once per hour); NOT IN
# is a hashed subplan where NOT EXISTS against the CTE was a nested loop (35 s for a year).
_REFRESH_SQL = """
WITH hours AS (
    SELECT date_trunc('hour', as_of, 'UTC') AS bucket,
           count(*) AS n,
           sum(value / %(scale)s) AS s,
           min(value) AS lo,
           max(value) AS hi,
           min(as_of) AS first_as_of,
           (array_agg(value ORDER BY as_of))[1] AS first_value,
           max(as_of) AS last_as_of,
           (array_agg(value ORDER BY as_of DESC))[1] AS last_value
    FROM kpis_measurement
    WHERE kpi_id = %(kpi)s AND {raw_spans}
      AND value >= -%(largest)s AND value <= %(largest)s
    GROUP BY 1
),
all_hours AS (
    SELECT * FROM hours
    UNION ALL
    SELECT bucket, count, sum_scaled, min, max, first_as_of, first_value, last_as_of, last_value
    FROM kpis_rollup
    WHERE kpi_id = %(kpi)s AND resolution = 'hour' AND {other_days} AND NOT {other_hours}
),
days AS (
    SELECT date_trunc('day', bucket, 'UTC') AS bucket,
           sum(n) AS n,
           sum(s) AS s,
           min(lo) AS lo,
           max(hi) AS hi,
           min(first_as_of) AS first_as_of,
           (array_agg(first_value ORDER BY first_as_of))[1] AS first_value,
           max(last_as_of) AS last_as_of,
           (array_agg(last_value ORDER BY last_as_of DESC))[1] AS last_value
    FROM all_hours
    GROUP BY 1
),
fresh AS (
    SELECT 'hour' AS resolution, * FROM hours
    UNION ALL
    SELECT 'day' AS resolution, * FROM days
),
gone AS (
    DELETE FROM kpis_rollup r
    WHERE r.kpi_id = %(kpi)s
      AND ((r.resolution = 'hour' AND {gone_hours}) OR (r.resolution = 'day' AND {gone_days}))
      AND (r.resolution, r.bucket) NOT IN (SELECT resolution, bucket FROM fresh)
)
INSERT INTO kpis_rollup (kpi_id, resolution, bucket, count, sum_scaled, min, max,
                         first_as_of, first_value, last_as_of, last_value)
SELECT %(kpi)s, resolution, bucket, n, s, lo, hi, first_as_of, first_value, last_as_of, last_value
FROM fresh
ON CONFLICT (kpi_id, resolution, bucket) DO UPDATE SET
    count = EXCLUDED.count,
    sum_scaled = EXCLUDED.sum_scaled,
    min = EXCLUDED.min,
    max = EXCLUDED.max,
    first_as_of = EXCLUDED.first_as_of,
    first_value = EXCLUDED.first_value,
    last_as_of = EXCLUDED.last_as_of,
    last_value = EXCLUDED.last_value
"""

_CONTRACT = """

    Concurrency: the caller locks the KPI's row (`KPI.objects.select_for_update()
    .filter(pk=kpi_id)`) BEFORE writing the measurements and holds it until commit. Two
    writers of the same KPI thus serialize, and the second one's refresh (a new statement, so
    a new snapshot under READ COMMITTED) sees the first one's committed values: no bucket is
    computed from a view that misses a committed value."""


def rollups_refresh(*, kpi_id: int, start: dt.datetime, end: dt.datetime) -> None:
    """Recompute the KPI's hourly and daily rollups overlapping [start, end] (the buckets
    holding `start` and `end` included) from its raw values, in the caller's transaction;
    buckets left without values are deleted. Recomputing (not adding deltas) keeps a bucket
    right when an existing value is written again with another value. On PostgreSQL one
    statement."""
    _refresh(kpi_id, _span(start, end))


def rollups_refresh_statement(
    *, kpi_id: int, start: dt.datetime, end: dt.datetime
) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: the statement of `rollups_refresh` and its (named) parameters, for a
    caller that sends it in one round trip with others, after the statements that write the
    values (each statement of a multi-statement string has a snapshot of its own, which sees
    the writes of those before it)."""
    return _refresh_sql(kpi_id, _span(start, end))


def _span(start: dt.datetime, end: dt.datetime) -> list[Span]:
    if start > end:
        start, end = end, start
    return [(hour_floor(start), hour_floor(end) + HOUR)]


def rollups_refresh_at(*, kpi_id: int, moments: Iterable[dt.datetime]) -> None:
    """`rollups_refresh` for the hours (and their days) holding the given moments: one
    statement for a push however far apart its values are (a refresh from its first to its
    last value would recompute a whole year for two values a year apart)."""
    # Whole hours since the epoch: ten times faster than flooring datetimes, for 10,000 values.
    hours = {int(moment.timestamp()) // 3600 for moment in moments}
    _refresh(kpi_id, _hour_spans([EPOCH + HOUR * hour for hour in sorted(hours)]))


rollups_refresh.__doc__ = (rollups_refresh.__doc__ or "") + _CONTRACT
rollups_refresh_at.__doc__ = (rollups_refresh_at.__doc__ or "") + _CONTRACT


def _refresh(kpi_id: int, hour_spans: list[Span]) -> None:
    if not hour_spans:
        return
    if connection.vendor != "postgresql":
        _refresh_portable(kpi_id, hour_spans, _day_spans(hour_spans))
        return
    with connection.cursor() as cursor:
        cursor.execute(*_refresh_sql(kpi_id, hour_spans))


def _refresh_sql(kpi_id: int, hour_spans: list[Span]) -> tuple[str, dict[str, Any]]:
    day_spans = _day_spans(hour_spans)
    parts = {
        "raw_spans": _within("as_of", hour_spans),
        "other_days": _within("bucket", day_spans),
        "other_hours": _within("bucket", hour_spans),
        "gone_hours": _within("r.bucket", hour_spans),
        "gone_days": _within("r.bucket", day_spans),
    }
    # Named placeholders for the constants, positional ones for the spans: turn the
    # positional into named ones (psycopg takes one style per statement).
    params: dict[str, Any] = {"kpi": kpi_id, "scale": SCALE, "largest": _LARGEST}
    texts = {}
    for name, (sql, moments) in parts.items():
        pieces = sql.split("%s")
        text = pieces[0]
        for index, (moment, piece) in enumerate(zip(moments, pieces[1:], strict=True)):
            key = f"{name}_{index}"
            params[key] = moment
            text += f"%({key})s" + piece
        texts[name] = text
    return _REFRESH_SQL.format(**texts), params


@dataclass
class _Bucket:
    count: int
    sum_scaled: float
    min: float
    max: float
    first_as_of: dt.datetime
    first_value: float
    last_as_of: dt.datetime
    last_value: float

    @classmethod
    def of(cls, as_of: dt.datetime, value: float) -> _Bucket:
        return cls(1, value / SCALE, value, value, as_of, value, as_of, value)

    def add(self, other: _Bucket) -> None:
        # `other` starts at or after this bucket's values (rows come in as_of order).
        self.count += other.count
        self.sum_scaled += other.sum_scaled
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.last_as_of, self.last_value = other.last_as_of, other.last_value


def _rolled(
    rows: Iterable[tuple[dt.datetime, _Bucket]], floor: Callable[[dt.datetime], dt.datetime]
) -> dict[dt.datetime, _Bucket]:
    buckets: dict[dt.datetime, _Bucket] = {}
    for moment, part in rows:
        key = floor(moment)
        if key in buckets:
            buckets[key].add(part)
        else:
            buckets[key] = _Bucket(**vars(part))
    return buckets


def _refresh_portable(kpi_id: int, hour_spans: list[Span], day_spans: list[Span]) -> None:
    """The same as the PostgreSQL statement, in a few queries and Python (SQLite)."""

    def within(column: str, spans: list[Span]) -> Q:
        q = Q()
        for lo, hi in spans:
            q |= Q(**{f"{column}__gte": lo, f"{column}__lt": hi})
        return q

    raw = (
        Measurement.objects.filter(within("as_of", hour_spans), kpi_id=kpi_id)
        .filter(value__gte=-_LARGEST, value__lte=_LARGEST)
        .order_by("as_of")
        .values_list("as_of", "value")
    )
    hours = _rolled(((as_of, _Bucket.of(as_of, value)) for as_of, value in raw), hour_floor)
    others = (
        Rollup.objects.filter(within("bucket", day_spans), kpi_id=kpi_id)
        .filter(resolution=Resolution.HOUR)
        .exclude(within("bucket", hour_spans))
        .values_list(*_COLUMNS)
    )
    every_hour = sorted(
        [*hours.items(), *((row[0], _Bucket(*row[1:])) for row in others)], key=_first
    )
    days = _rolled(every_hour, day_floor)
    Rollup.objects.filter(
        within("bucket", hour_spans), kpi_id=kpi_id, resolution=Resolution.HOUR
    ).delete()
    Rollup.objects.filter(
        within("bucket", day_spans), kpi_id=kpi_id, resolution=Resolution.DAY
    ).delete()
    Rollup.objects.bulk_create(
        [
            Rollup(kpi_id=kpi_id, resolution=resolution, bucket=bucket, **vars(part))
            for resolution, buckets in ((Resolution.HOUR, hours), (Resolution.DAY, days))
            for bucket, part in buckets.items()
        ],
        batch_size=500,
    )


_COLUMNS = (
    "bucket",
    "count",
    "sum_scaled",
    "min",
    "max",
    "first_as_of",
    "first_value",
    "last_as_of",
    "last_value",
)


def _first(item: tuple[dt.datetime, _Bucket]) -> dt.datetime:
    return item[0]


def rollups_rebuild(
    kpi_ids: Iterable[int] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> int:
    """Rebuild the rollups of the given KPIs (all when None) from their raw values, one
    transaction per KPI holding the KPI's row lock (so no writer of the KPI interleaves):
    from the day of a KPI's oldest raw value on, all of them; those before it are kept, as
    they may be all that is left of values that retention dropped. `progress(done, total,
    kpi_id)` is called after each KPI. Returns the KPIs rebuilt."""
    ids = list(kpi_ids) if kpi_ids is not None else None
    query = KPI.objects.order_by("pk")
    if ids is not None:
        query = query.filter(pk__in=ids)
    todo = list(query.values_list("pk", flat=True))
    for done, kpi_id in enumerate(todo, start=1):
        with transaction.atomic():
            if not KPI.objects.select_for_update().filter(pk=kpi_id).exists():
                continue  # deleted meanwhile
            values = Measurement.objects.filter(kpi_id=kpi_id).order_by("as_of")
            first = values.values_list("as_of", flat=True).first()
            last = values.reverse().values_list("as_of", flat=True).first()
            if first is not None and last is not None:
                Rollup.objects.filter(kpi_id=kpi_id, bucket__gte=day_floor(first)).delete()
                rollups_refresh(kpi_id=kpi_id, start=first, end=last)
        if progress is not None:
            progress(done, len(todo), kpi_id)
    return len(todo)
