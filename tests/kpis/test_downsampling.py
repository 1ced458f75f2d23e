"""Server-side downsampling of a KPI's trend (kpis.selectors.series): whatever the number of
measurements, at most `max_points` buckets, each with the avg / min / max / count of exactly
the measurements of [start, end) that fall in it, computed by the database.

The measurements are generated inside the database (generate_series on PostgreSQL, a recursive
CTE on SQLite) from a formula that the tests evaluate again in Python for the expectation:
value(g) = ((g * 7919) % 10007) / 4 at t0 + g * step seconds. Quarter values keep every sum
exact in binary floating point, so the averages must match exactly, not only nearly."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from initiatives.models import Initiative
from kpis import services
from kpis.models import KPI, Measurement, Origin
from kpis.rollups import rollups_rebuild
from kpis.selectors import MAX_POINTS, RANGES, chart_buckets, series

pytestmark = pytest.mark.django_db

T0 = 1_700_000_003  # 2023-11-14 22:13:23 UTC: not aligned to any bucket size


def value_of(g: int) -> float:
    return ((g * 7919) % 10007) / 4


@dataclass(frozen=True)
class Generated:
    kpi: KPI
    n: int
    t0: int
    step: int
    values: list[float]

    @property
    def end(self) -> int:
        """Just after the last measurement."""
        return self.t0 + self.n * self.step

    def first_index_at_or_after(self, epoch: int) -> int:
        return min(self.n, max(0, -((self.t0 - epoch) // self.step)))  # ceil division

    def expected(
        self, start: int, end: int, size: int
    ) -> list[tuple[int, float, float, float, int]]:
        """The buckets computed in Python from the formula (not from the database)."""
        lo, hi = self.first_index_at_or_after(start), self.first_index_at_or_after(end)
        points = []
        g = lo
        while g < hi:
            bucket = ((self.t0 + g * self.step) // size) * size
            nxt = min(hi, self.first_index_at_or_after(bucket + size))
            chunk = self.values[g:nxt]
            points.append((bucket, sum(chunk) / len(chunk), min(chunk), max(chunk), len(chunk)))
            g = nxt
        return points


def generate(kpi: KPI, n: int, step: int, t0: int = T0) -> Generated:
    """Insert n measurements of the KPI in one statement, inside the database."""
    params = [kpi.pk, t0, step, n]
    if connection.vendor == "postgresql":
        sql = (
            "INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at) "
            "SELECT %s, to_timestamp(%s + g * %s), ((g * 7919) %% 10007) / 4.0, 'api', now() "
            "FROM generate_series(0::bigint, %s - 1) AS g"
        )
    else:
        sql = (
            "INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, recorded_at) "
            "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < %s - 1) "
            "SELECT %s, datetime(%s + g * %s, 'unixepoch'), ((g * 7919) %% 10007) / 4.0, "
            "'api', datetime('now') FROM s"
        )
        params = [n, kpi.pk, t0, step]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    rollups_rebuild([kpi.pk])  # written around the services, as `rollups_rebuild` is for
    return Generated(kpi, n, t0, step, [value_of(g) for g in range(n)])


def at(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


@pytest.fixture
def kpi(initiative: Initiative, pm: Any) -> KPI:
    return services.kpi_define(initiative=initiative, user=pm, name="Approval rate", unit="%")


@pytest.fixture
def other_kpi(initiative: Initiative, pm: Any) -> KPI:
    return services.kpi_define(initiative=initiative, user=pm, name="Latency", unit="ms")


def check_range(data: Generated, start: int, end: int, max_points: int = MAX_POINTS) -> int:
    """series() over [start, end) against the Python computation; returns the point count."""
    result = series(data.kpi, at(start), at(end), max_points=max_points)
    # The fewest seconds for at most max_points buckets; from two hours (days) up, rounded
    # up to whole hours (days), so that long ranges read whole hourly (daily) rollups.
    size = max(1, math.ceil((end - start) / (max_points - 1)))
    for unit in (86_400, 3_600):
        if size >= 2 * unit:
            size = math.ceil(size / unit) * unit
            break
    assert result.bucket_seconds == size
    assert len(result.points) <= max_points
    expected = data.expected(start, end, result.bucket_seconds)
    assert [p[0] for p in result.points] == [p[0] for p in expected]
    for got, want in zip(result.points, expected, strict=True):
        bucket, avg, low, high, count = got
        assert (bucket, low, high, count) == (want[0], want[2], want[3], want[4])
        assert avg == pytest.approx(want[1], rel=1e-12, abs=1e-12)
        assert start - result.bucket_seconds < bucket < end
    # Exactly the measurements of [start, end): none before, none at or after the end.
    in_range = Measurement.objects.filter(
        kpi=data.kpi, as_of__gte=at(start), as_of__lt=at(end)
    ).count()
    assert sum(p[4] for p in result.points) == in_range
    return len(result.points)


def test_a_million_measurements_downsample_to_at_most_500_points_per_range(kpi: KPI) -> None:
    began = time.perf_counter()
    data = generate(kpi, n=1_000_000, step=35)  # 35 M seconds: more than a year
    inserted = time.perf_counter()
    assert Measurement.objects.filter(kpi=kpi).count() == 1_000_000
    for name, span in RANGES.items():
        end = data.end - 17  # the range ends between two measurements
        start = end - int(span.total_seconds())
        points = check_range(data, start, end)
        size, _ = chart_buckets(span.total_seconds())
        assert points >= math.ceil(span.total_seconds() / size), (name, points)  # all full
    print(  # shown with -s
        f"\n1M rows: insert {inserted - began:.1f} s, "
        f"5 ranges checked {time.perf_counter() - inserted:.1f} s"
    )


def test_fifty_thousand_measurements_every_range(kpi: KPI, other_kpi: KPI) -> None:
    # The other KPI's values at the very same moments must not leak into the buckets.
    generate(other_kpi, n=50_000, step=700)
    data = generate(kpi, n=50_000, step=700)  # 35 M seconds: more than a year
    for name, span in RANGES.items():
        end = data.end - 300
        start = end - int(span.total_seconds())
        points = check_range(data, start, end)
        assert 0 < points <= MAX_POINTS, name
    # The whole history at once, and fewer points than the default.
    for max_points in (2, 3, 10, 101):
        assert check_range(data, data.t0 - 1000, data.end + 1000, max_points) <= max_points


def test_series_is_one_query_whatever_the_number_of_rows(
    kpi: KPI, django_assert_num_queries: Any
) -> None:
    data = generate(kpi, n=20_000, step=60)
    with django_assert_num_queries(1):
        result = series(kpi, at(data.t0), at(data.end))
    assert sum(p[4] for p in result.points) == 20_000


def test_fine_ranges_keep_one_measurement_per_bucket(kpi: KPI) -> None:
    data = generate(kpi, n=100, step=600)
    result = series(kpi, at(data.t0), at(data.end))
    assert len(result.points) == 100
    assert [p[1] for p in result.points] == data.values
    assert all(p[1] == p[2] == p[3] and p[4] == 1 for p in result.points)


def test_range_bounds_are_start_inclusive_end_exclusive(kpi: KPI, pm: Any) -> None:
    start = dt.datetime(2025, 1, 10, 12, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=24)
    micro = dt.timedelta(microseconds=1)
    for as_of, value in [
        (start - micro, 1000.0),  # just before: out
        (start, 1.0),  # on the start: in
        (start + dt.timedelta(hours=6), 2.0),
        (end - micro, 3.0),  # just before the end: in
        (end, 2000.0),  # on the end: out
        (end + dt.timedelta(days=1), 3000.0),
    ]:
        services.measurement_record(kpi=kpi, as_of=as_of, value=value, origin=Origin.API)

    result = series(kpi, start, end)

    assert sum(p[4] for p in result.points) == 3
    assert sorted(v for p in result.points for v in (p[2], p[3])) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert max(p[3] for p in result.points) == 3.0
    assert result.points[0][0] <= start.timestamp() < result.points[0][0] + result.bucket_seconds
    last = result.points[-1][0]
    assert last <= (end - micro).timestamp() < last + result.bucket_seconds


def test_no_measurement_in_range_is_an_empty_series(kpi: KPI) -> None:
    services.measurement_record(
        kpi=kpi, as_of=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), value=1.0, origin=Origin.API
    )
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    result = series(kpi, start, start + RANGES["7d"])
    assert result.points == []
    assert result.bucket_seconds == math.ceil(7 * 86400 / (MAX_POINTS - 1))


def test_bucket_starts_are_aligned_and_increasing(kpi: KPI) -> None:
    data = generate(kpi, n=5_000, step=97)
    result = series(kpi, at(data.t0 + 13), at(data.end - 13), max_points=50)
    starts = [p[0] for p in result.points]
    assert starts == sorted(set(starts))
    assert all(s % result.bucket_seconds == 0 for s in starts)
    assert 45 <= len(starts) <= 50
