"""Hourly and daily rollups (kpis.rollups): after every push, update, sparse push, deletion
of raw values or rebuild, each rollup row equals the aggregate of the raw values of its UTC
hour or day, computed here in Python from the Measurement rows."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from kpis import services
from kpis.models import KPI, Measurement, Origin, Resolution, Rollup
from kpis.rollups import (
    MAX_SPANS,
    SCALE,
    day_floor,
    hour_floor,
    rollups_rebuild,
    rollups_refresh,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
START = dt.datetime(2025, 3, 30, 21, 17, 5, tzinfo=UTC)  # late in a day, not on the hour


def snapshot(kpi: KPI) -> dict[tuple[str, dt.datetime], tuple[Any, ...]]:
    return {
        (r.resolution, r.bucket): (
            r.count,
            r.sum_scaled * SCALE,
            r.min,
            r.max,
            r.first_as_of,
            r.first_value,
            r.last_as_of,
            r.last_value,
        )
        for r in Rollup.objects.filter(kpi=kpi)
    }


def expected(kpi: KPI) -> dict[tuple[str, dt.datetime], tuple[Any, ...]]:
    groups: dict[tuple[str, dt.datetime], list[tuple[dt.datetime, float]]] = defaultdict(list)
    for as_of, value in Measurement.objects.filter(kpi=kpi).values_list("as_of", "value"):
        if math.isfinite(value):
            groups[(Resolution.HOUR, hour_floor(as_of))].append((as_of, value))
            groups[(Resolution.DAY, day_floor(as_of))].append((as_of, value))
    result = {}
    for key, rows in groups.items():
        rows.sort()
        values = [v for _, v in rows]
        result[key] = (
            len(rows),
            sum(values),
            min(values),
            max(values),
            rows[0][0],
            rows[0][1],
            rows[-1][0],
            rows[-1][1],
        )
    return result


def assert_rollups_right(kpi: KPI) -> None:
    got, want = snapshot(kpi), expected(kpi)
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        count, total, *rest = got[key]
        assert count == row[0], key
        assert total == pytest.approx(row[1], rel=1e-12), key
        assert tuple(rest) == row[2:], key


def push(kpi: KPI, user: Any, items: list[tuple[dt.datetime, float]]) -> tuple[int, int]:
    return services.measurements_push(kpi=kpi, user=user, items=items)


def test_a_push_across_hours_and_days_rolls_them_up(ops_kpi, engineer):
    items = [(START + dt.timedelta(minutes=7 * i), float((i * 37) % 101)) for i in range(500)]
    push(ops_kpi, engineer, items)
    assert_rollups_right(ops_kpi)
    days = {k for k in snapshot(ops_kpi) if k[0] == Resolution.DAY}
    assert len(days) == 4  # 58 hours from 21:17 on the first day


def test_updating_existing_values_recomputes_their_buckets(ops_kpi, engineer):
    items = [(START + dt.timedelta(minutes=10 * i), float(i)) for i in range(300)]
    push(ops_kpi, engineer, items)
    before = snapshot(ops_kpi)
    # The largest value lowered, the first of an hour changed, and new values in between.
    changed = [(items[-1][0], -5.0), (items[3][0], 1000.0)]
    new = [(START + dt.timedelta(minutes=10 * i + 5), 0.5) for i in range(0, 300, 17)]
    assert push(ops_kpi, engineer, changed + new) == (len(new), 2)
    assert_rollups_right(ops_kpi)
    assert snapshot(ops_kpi) != before


def test_a_sparse_push_touches_only_the_buckets_of_its_values(ops_kpi, engineer, settings):
    far = [(START - dt.timedelta(days=400), 1.0), (START, 2.0)]
    push(ops_kpi, engineer, far)
    assert len(snapshot(ops_kpi)) == 4  # two hours, two days
    assert_rollups_right(ops_kpi)
    # More separate hours than spans per statement: merged across the smallest gaps.
    scattered = [
        (START - dt.timedelta(days=3 * i, minutes=i), float(i)) for i in range(3 * MAX_SPANS)
    ]
    push(ops_kpi, engineer, scattered)
    assert_rollups_right(ops_kpi)


def test_buckets_whose_values_are_gone_are_deleted(ops_kpi, engineer):
    items = [(START + dt.timedelta(minutes=20 * i), float(i)) for i in range(200)]
    push(ops_kpi, engineer, items)
    # Values removed around the services (as retention would), then the range refreshed.
    lo, hi = START + dt.timedelta(hours=5), START + dt.timedelta(hours=40)
    Measurement.objects.filter(kpi=ops_kpi, as_of__gte=lo, as_of__lt=hi).delete()
    rollups_refresh(kpi_id=ops_kpi.pk, start=lo, end=hi)
    assert_rollups_right(ops_kpi)
    assert not Rollup.objects.filter(
        kpi=ops_kpi,
        resolution=Resolution.HOUR,
        bucket__gte=lo + dt.timedelta(hours=1),
        bucket__lt=hour_floor(hi),
    ).exists()


def test_values_that_are_not_finite_are_left_out(ops_kpi):
    Measurement.objects.bulk_create(
        Measurement(kpi=ops_kpi, as_of=START + dt.timedelta(seconds=i), value=v, origin="api")
        for i, v in enumerate([float("inf"), 3.0, 1e308, 1e308, -2.0])
    )
    rollups_rebuild([ops_kpi.pk])
    assert_rollups_right(ops_kpi)
    row = Rollup.objects.get(kpi=ops_kpi, resolution=Resolution.HOUR)
    assert (row.count, row.min, row.max) == (4, -2.0, 1e308)
    assert math.isfinite(row.sum_scaled) and row.sum_scaled * SCALE == pytest.approx(2e308 + 1)


def test_the_rebuild_command_rolls_up_values_written_around_the_services(ops_kpi, engineer):
    Measurement.objects.bulk_create(
        Measurement(
            kpi=ops_kpi, as_of=START + dt.timedelta(minutes=13 * i), value=i, origin=Origin.API
        )
        for i in range(400)
    )

    def rollup(moment: dt.datetime) -> Rollup:
        return Rollup.objects.create(
            kpi=ops_kpi,
            resolution=Resolution.DAY,
            bucket=moment,
            count=1,
            sum_scaled=0.0,
            min=0,
            max=0,
            first_as_of=moment,
            first_value=0,
            last_as_of=moment,
            last_value=0,
        )

    # Before the oldest raw value: kept (all that retention may have left of old values);
    # from its day on, without values: deleted.
    kept = rollup(dt.datetime(2001, 1, 1, tzinfo=UTC))
    stale = rollup(dt.datetime(2025, 4, 20, tzinfo=UTC))
    out = StringIO()
    call_command("rollups_rebuild", "--kpi", str(ops_kpi.pk), stdout=out)
    assert "1/1 KPIs" in out.getvalue()
    assert not Rollup.objects.filter(pk=stale.pk).exists()
    assert Rollup.objects.filter(pk=kept.pk).exists()
    kept.delete()
    assert_rollups_right(ops_kpi)

    Rollup.objects.all().delete()
    out = StringIO()
    call_command("rollups_rebuild", stdout=out)
    total = KPI.objects.count()
    assert f"{total}/{total} KPIs" in out.getvalue()
    for kpi in KPI.objects.all():
        assert_rollups_right(kpi)


def test_the_demo_data_keeps_its_rollups_right(db, settings):
    # Every writer of measurements in the demo (its pushed history, its jobs' trial runs).
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", stdout=StringIO())
    kpis = KPI.objects.filter(measurements__isnull=False).distinct()
    assert kpis.exists()
    for kpi in kpis:
        assert_rollups_right(kpi)
