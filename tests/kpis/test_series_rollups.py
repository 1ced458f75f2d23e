"""Charts and API buckets read the rollups for long ranges: the same buckets (start, count,
min, max exactly; avg up to rounding) as computed here in Python from the raw values, for
several ranges, after updating existing values and after a push spanning buckets; one
query per chart; calendar buckets in a zone whose days are not UTC days fall back to hourly
rollups or to the raw values."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kpis import selectors, services
from kpis.models import KPI, Measurement

pytestmark = pytest.mark.django_db

UTC = dt.UTC
# ~3.2 years of values every 53 minutes, ending a few hours ago (nothing in the future).
STEP = dt.timedelta(minutes=53)
COUNT = 32_000


def value_of(i: int) -> float:
    return ((i * 7919) % 10007) / 4 - 1000


def push_all(kpi: KPI, user: Any, items: list[tuple[dt.datetime, float]]) -> None:
    for at in range(0, len(items), services.MAX_PUSH):
        services.measurements_push(kpi=kpi, user=user, items=items[at : at + services.MAX_PUSH])


@pytest.fixture
def history(ops_kpi, engineer):
    end = timezone.now().replace(microsecond=0) - dt.timedelta(hours=3, minutes=7, seconds=11)
    t0 = end - STEP * COUNT
    items = [(t0 + STEP * i, value_of(i)) for i in range(COUNT)]
    push_all(ops_kpi, engineer, items)
    return ops_kpi, t0, end


def raw_values(kpi: KPI, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
    return list(
        Measurement.objects.filter(kpi=kpi, as_of__gte=start, as_of__lt=end).values_list(
            "as_of", "value"
        )
    )


def expected_series(kpi: KPI, start: dt.datetime, end: dt.datetime, size: int) -> list[Any]:
    groups: dict[int, list[float]] = defaultdict(list)
    for as_of, value in raw_values(kpi, start, end):
        groups[int(as_of.timestamp()) // size * size].append(value)
    return [(b, sum(v) / len(v), min(v), max(v), len(v)) for b, v in sorted(groups.items())]


def assert_same(got: list[Any], want: list[Any]) -> None:
    assert [p[0] for p in got] == [p[0] for p in want]
    for g, w in zip(got, want, strict=True):
        assert (g[0], g[2], g[3], g[4]) == (w[0], w[2], w[3], w[4])
        assert g[1] == pytest.approx(w[1], rel=1e-9, abs=1e-9)


RANGES = [
    ("24h", dt.timedelta(hours=24), None),
    ("90d", dt.timedelta(days=90), "hour"),
    ("1y", dt.timedelta(days=365), "hour"),
    ("3y", dt.timedelta(days=3 * 365), "day"),
]


def check_charts(kpi: KPI, end: dt.datetime) -> None:
    for name, span, source in RANGES:
        # Ragged ends: neither on the hour nor on the day.
        stop = end - dt.timedelta(minutes=41, seconds=3)
        start = stop - span
        size, resolution = selectors.chart_buckets(span.total_seconds())
        assert resolution == source, name
        with CaptureQueriesContext(connection) as queries:
            result = selectors.series(kpi, start, stop)
        assert len(queries) == 1, name
        assert ("kpis_rollup" in queries[0]["sql"]) == (source is not None), name
        assert result.bucket_seconds == size
        assert len(result.points) <= selectors.MAX_POINTS
        assert_same(result.points, expected_series(kpi, start, stop, size))


def test_charts_from_rollups_equal_charts_from_raw_values(history, engineer):
    kpi, t0, end = history
    check_charts(kpi, end)

    # Existing values updated (a new extreme in one bucket, others lowered) ...
    updates = [(t0 + STEP * i, 5000.0 if i % 2 else -5000.0) for i in range(5, COUNT, 997)]
    assert services.measurements_push(kpi=kpi, user=engineer, items=updates) == (
        0,
        len(updates),
    )
    check_charts(kpi, end)

    # ... and a push of new values between the old ones, across hours and days.
    middle = t0 + STEP * (COUNT // 2)
    new = [(middle + dt.timedelta(minutes=11 * i, seconds=17), 0.25 * i) for i in range(600)]
    assert services.measurements_push(kpi=kpi, user=engineer, items=new) == (600, 0)
    check_charts(kpi, end)


def test_several_kpis_chart_in_one_query(history, engineer, ops_initiative):
    kpi, t0, end = history
    other = ops_initiative.kpis.exclude(pk=kpi.pk).first() or kpi
    services.measurements_push(
        kpi=other,
        user=engineer,
        items=[(t0 + dt.timedelta(days=100, minutes=i), 1.0 * i) for i in range(50)],
    )
    start = end - dt.timedelta(days=365)
    with CaptureQueriesContext(connection) as queries:
        charts = selectors.series_many([kpi, other], start, end)
    assert len(queries) == 1
    size = charts[kpi.pk].bucket_seconds
    for each in (kpi, other):
        assert_same(charts[each.pk].points, expected_series(each, start, end, size))


def test_chart_bucket_sizes():
    assert selectors.chart_buckets(86_400) == (174, None)
    assert selectors.chart_buckets(7 * 86_400) == (1_213, None)
    assert selectors.chart_buckets(90 * 86_400) == (18_000, "hour")  # 15,584 s up to 5 h
    assert selectors.chart_buckets(365 * 86_400) == (64_800, "hour")  # 63,201 s up to 18 h
    assert selectors.chart_buckets(3 * 365 * 86_400) == (259_200, "day")  # 2.19 d up to 3 d


# Calendar buckets (the API) -----------------------------------------------------------------


def expected_calendar(kpi: KPI, bucket: str, start: dt.datetime, end: dt.datetime) -> list[Any]:
    groups: dict[dt.datetime, list[float]] = defaultdict(list)
    for as_of, value in raw_values(kpi, start, end):
        local = timezone.localtime(as_of)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        key = {
            "hour": local.replace(minute=0, second=0, microsecond=0),
            "day": day,
            "week": day - dt.timedelta(days=day.weekday()),
            "month": day.replace(day=1),
        }[bucket]
        # Truncated local wall time, aware in the zone (as TruncDay & co. give it).
        groups[timezone.make_aware(key.replace(tzinfo=None))].append(value)
    return [
        [b.isoformat(), sum(v) / len(v), min(v), max(v), len(v)] for b, v in sorted(groups.items())
    ]


def check_calendar(kpi: KPI, start: dt.datetime, end: dt.datetime, reads_rollups: bool) -> None:
    for bucket in ("hour", "day", "week", "month"):
        if bucket == "hour" and (end - start) > dt.timedelta(days=400):
            continue  # more than MAX_BUCKETS hours
        with CaptureQueriesContext(connection) as queries:
            got = selectors.calendar_buckets(kpi, bucket, start, end)
        assert len(queries) == 1
        assert ("kpis_rollup" in queries[0]["sql"]) == reads_rollups, bucket
        want = expected_calendar(kpi, bucket, start, end)
        assert [row[0] for row in got] == [row[0] for row in want], bucket
        for g, w in zip(got, want, strict=True):
            assert (g[2], g[3], g[4]) == (w[2], w[3], w[4])
            assert g[1] == pytest.approx(w[1], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("zone", "reads_rollups"),
    [
        ("UTC", True),  # daily rollups for days, weeks, months
        ("Europe/Paris", True),  # whole-hour offsets, DST included: hourly rollups
        ("Asia/Kolkata", False),  # +05:30: no rollup lies within its hours; raw values
    ],
)
def test_calendar_buckets_from_rollups_equal_those_from_raw_values(history, zone, reads_rollups):
    kpi, t0, end = history
    start = end - dt.timedelta(days=200, minutes=17)
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        check_calendar(kpi, start, end - dt.timedelta(minutes=5), reads_rollups)


def test_calendar_buckets_of_the_whole_history(history):
    kpi, t0, end = history
    with CaptureQueriesContext(connection) as queries:
        got = selectors.calendar_buckets(kpi, "month", None, None)
    assert "kpis_rollup" in queries[0]["sql"]
    assert got == [
        [row[0], pytest.approx(row[1], rel=1e-9), row[2], row[3], row[4]]
        for row in expected_calendar(
            kpi, "month", t0 - dt.timedelta(days=1), end + dt.timedelta(days=1)
        )
    ]
    assert sum(row[4] for row in got) == COUNT
    assert not math.isnan(got[0][1])
