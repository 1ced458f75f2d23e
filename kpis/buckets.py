"""The one bucketing query behind the charts and the API's buckets: avg, min, max and count
of the finite values of [start, end) per KPI and bucket, read from the hourly or daily
rollups for the whole hours / days of the range and from the raw values for its ragged ends,
so that the result is that of the raw values (the sums up to rounding) at a fraction of the
rows read."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

from django.db import connection

from kpis.models import Resolution
from kpis.rollups import DAY, HOUR, SCALE, day_floor, hour_floor

_LARGEST = sys.float_info.max

# (source, lo, hi): the values of [lo, hi) (None: unbounded) from the raw values ("raw") or
# the rollups of that resolution.
Piece = tuple[str, dt.datetime | None, dt.datetime | None]


def _ceil(moment: dt.datetime, floor: Any, step: dt.timedelta) -> dt.datetime:
    low = floor(moment)
    return low if low == moment else low + step


def pieces(start: dt.datetime | None, end: dt.datetime | None, coarsest: str | None) -> list[Piece]:
    """[start, end) cut into raw ends, hourly and daily middles (at most `coarsest`); None
    is an open end (no ragged end to read raw there)."""
    if coarsest is None:
        return [("raw", start, end)]
    h1 = None if start is None else _ceil(start, hour_floor, HOUR)
    h2 = None if end is None else hour_floor(end)
    if h1 is not None and h2 is not None and h1 >= h2:
        return [("raw", start, end)]
    middle: list[Piece] = [(Resolution.HOUR, h1, h2)]
    if coarsest == Resolution.DAY:
        d1 = None if h1 is None else _ceil(h1, day_floor, DAY)
        d2 = None if h2 is None else day_floor(h2)
        if d1 is None or d2 is None or d1 < d2:
            middle = [(Resolution.DAY, d1, d2)]
            if h1 is not None and d1 is not None and h1 < d1:
                middle.insert(0, (Resolution.HOUR, h1, d1))
            if h2 is not None and d2 is not None and d2 < h2:
                middle.append((Resolution.HOUR, d2, h2))
    cut: list[Piece] = []
    if start is not None and h1 is not None and start < h1:
        cut.append(("raw", start, h1))
    cut += middle
    if end is not None and h2 is not None and h2 < end:
        cut.append(("raw", h2, end))
    return cut


def _union(kpi_ids: Sequence[int], parts: list[Piece]) -> tuple[str, list[Any]]:
    adapt = connection.ops.adapt_datetimefield_value
    # Only placeholders and our own column names go into the SQL text.
    selects, params = [], []
    ids = ", ".join(["%s"] * len(kpi_ids))
    for source, lo, hi in parts:
        if source == "raw":
            sql = (
                "SELECT kpi_id, as_of AS t, 1 AS n, value / %s AS s, value AS lo, value AS hi "  # noqa: S608
                f"FROM kpis_measurement WHERE kpi_id IN ({ids}) "
                "AND value >= %s AND value <= %s"
            )
            args: list[Any] = [SCALE, *kpi_ids, -_LARGEST, _LARGEST]
            column = "as_of"
        else:
            sql = (
                "SELECT kpi_id, bucket AS t, count AS n, sum_scaled AS s, min AS lo, max AS hi "  # noqa: S608
                f"FROM kpis_rollup WHERE kpi_id IN ({ids}) AND resolution = %s"
            )
            args = [*kpi_ids, source]
            column = "bucket"
        if lo is not None:
            sql += f" AND {column} >= %s"
            args.append(adapt(lo))
        if hi is not None:
            sql += f" AND {column} < %s"
            args.append(adapt(hi))
        selects.append(sql)
        params += args
    return " UNION ALL ".join(selects), params


def aggregate(
    kpi_ids: Sequence[int],
    parts: list[Piece],
    bucket_sql: str,
    bucket_params: Sequence[Any] = (),
    limit: int | None = None,
) -> list[tuple[int, Any, float, float, float, int]]:
    """(kpi_id, bucket, avg, min, max, count) per KPI and bucket in order: one query.
    `bucket_sql` computes the bucket of the column `u.t` (a moment)."""
    union, params = _union(kpi_ids, parts)
    # The average is that of the raw charts: the sum of the values scaled down by 2**64 (see
    # Rollup.sum_scaled), divided by the count, scaled back up.
    sql = (
        f"SELECT u.kpi_id, {bucket_sql} AS b, "  # noqa: S608  (our own SQL fragments)
        "SUM(u.s) / CAST(SUM(u.n) AS DOUBLE PRECISION) * %s, MIN(u.lo), MAX(u.hi), "
        "CAST(SUM(u.n) AS BIGINT) "
        f"FROM ({union}) u GROUP BY 1, 2 ORDER BY 1, 2"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bucket_params, SCALE, *params])
        return [tuple(row) for row in cursor.fetchall()]


def epoch_bucket_sql(seconds: int) -> str:
    """The start of the fixed-size bucket of `u.t`; `seconds` is an int we computed, safe to
    inline. PostgreSQL: the `date_bin` timestamp itself (the caller takes its epoch), which
    the planner estimates well and hashes; FLOOR(EXTRACT(EPOCH ...)) made it expect one group
    per row, sort and spill, and grouping by the numeric EXTRACT of date_bin made the 30-day raw
    chart about twice as slow (144 ms against 77 ms in EXPLAIN ANALYZE). SQLite: Unix seconds."""
    size = int(seconds)
    if connection.vendor == "postgresql":
        return f"date_bin(INTERVAL '{size} seconds', u.t, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
    return f"((CAST(strftime('%%s', u.t) AS INTEGER) / {size}) * {size})"


def epoch_seconds(bucket: Any) -> int:
    """A bucket of `epoch_bucket_sql` as Unix seconds."""
    if isinstance(bucket, dt.datetime):
        return int(bucket.timestamp())
    return int(bucket)
