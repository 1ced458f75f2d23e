"""Measurement values and timestamps out of range: refused at the one door that writes
measurements (`measurement_record` / `measurements_push`), and rows already in the database
from before (written around the service, as old data) can no longer break a chart."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bizdevops.errors import DomainError
from kpis import selectors, services
from kpis.models import Measurement, Origin
from kpis.rollups import rollups_rebuild
from tests.api.helpers import API, authenticate

pytestmark = pytest.mark.django_db

UTC = dt.UTC


# The door -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e308, -1e308, 1e15 * (1 + 1e-9), -2e15])
def test_a_value_beyond_the_bound_is_refused(ops_kpi, value):
    with pytest.raises(DomainError) as refused:
        services.measurement_record(
            kpi=ops_kpi, as_of=timezone.now(), value=value, origin=Origin.RUN
        )
    assert refused.value.field == "value"
    assert "1e+15" in refused.value.message
    assert not Measurement.objects.exists()


@pytest.mark.parametrize("value", [1e15, -1e15, 0.0, 1e-300])
def test_values_within_the_bound_are_recorded(ops_kpi, value):
    row = services.measurement_record(
        kpi=ops_kpi, as_of=timezone.now(), value=value, origin=Origin.RUN
    )
    assert row.value == value


def test_the_bound_is_a_setting(ops_kpi, settings):
    settings.MEASUREMENT_MAX_ABS_VALUE = 100.0
    with pytest.raises(DomainError):
        services.measurement_record(kpi=ops_kpi, as_of=timezone.now(), value=101, origin="run")
    assert (
        services.measurement_record(
            kpi=ops_kpi, as_of=timezone.now(), value=100, origin="run"
        ).value
        == 100
    )


@pytest.mark.parametrize(
    "as_of",
    [
        dt.datetime(9999, 12, 31, tzinfo=UTC),
        "in 301 s",
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_a_timestamp_out_of_range_is_refused(ops_kpi, as_of):
    if as_of == "in 301 s":
        as_of = timezone.now() + dt.timedelta(seconds=301)
    with pytest.raises(DomainError) as refused:
        services.measurement_record(kpi=ops_kpi, as_of=as_of, value=1, origin=Origin.RUN)
    assert refused.value.field == "as_of"
    assert not Measurement.objects.exists()


def test_timestamps_at_the_edges_are_recorded(ops_kpi, settings):
    settings.MEASUREMENT_MAX_FUTURE_SECONDS = 300
    for as_of in (
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        timezone.now() + dt.timedelta(seconds=290),
    ):
        services.measurement_record(kpi=ops_kpi, as_of=as_of, value=1, origin=Origin.RUN)
    assert Measurement.objects.count() == 2


def test_a_push_names_the_bad_item_and_writes_nothing(ops_kpi, engineer):
    now = timezone.now()
    items = [(now - dt.timedelta(hours=i), float(i)) for i in range(5)]
    items[3] = (items[3][0], 1e308)
    with pytest.raises(DomainError) as refused:
        services.measurements_push(kpi=ops_kpi, user=engineer, items=items)
    assert refused.value.field == "[3].value"
    items[3] = (dt.datetime(9999, 12, 30, tzinfo=UTC), 3.0)
    with pytest.raises(DomainError) as refused:
        services.measurements_push(kpi=ops_kpi, user=engineer, items=items)
    assert refused.value.field == "[3].as_of"
    assert not Measurement.objects.exists()


def test_a_far_future_value_can_no_longer_silence_alerts(ops_kpi, engineer):
    # The attack: a value dated 9999-12-31 stays the "latest" for ever, so later values never
    # change the KPI's status. Refused, the next real value is the latest.
    with pytest.raises(DomainError):
        services.measurements_push(
            kpi=ops_kpi, user=engineer, items=[(dt.datetime(9999, 12, 31, tzinfo=UTC), 100.0)]
        )
    services.measurements_push(kpi=ops_kpi, user=engineer, items=[(timezone.now(), 5.0)])
    (tile,) = selectors.tiles(type(ops_kpi).objects.filter(pk=ops_kpi.pk))
    assert tile.value == 5.0


# Old rows out of range ------------------------------------------------------------------------


def _old_rows(kpi, *values: float) -> None:
    """Rows written around the service (as data from before the bound existed), a second
    apart at half past an hour within the last 90 minutes: in one bucket of every chart."""
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(minutes=30)
    Measurement.objects.bulk_create(
        Measurement(kpi=kpi, as_of=base + dt.timedelta(seconds=i), value=v, origin=Origin.API)
        for i, v in enumerate(values)
    )
    # Data from before rollups existed is rolled up by `manage.py rollups_rebuild`.
    rollups_rebuild([kpi.pk])


def _finite_points(points) -> None:
    for point in points:
        for number in point[1:]:
            assert number is None or math.isfinite(number), points


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_calendar_buckets_of_huge_old_values_do_not_overflow(ops_kpi, bucket):
    _old_rows(ops_kpi, 1e308, 1e308, 1e308, 2.0)
    (row,) = selectors.calendar_buckets(ops_kpi, bucket, None, None)
    _finite_points([row])
    assert row[1] == pytest.approx(7.5e307)  # (3 × 1e308 + 2) / 4, exactly as a real average
    assert (row[2], row[3], row[4]) == (2.0, 1e308, 4)


def test_series_of_huge_old_values_do_not_overflow(ops_kpi):
    _old_rows(ops_kpi, 1e308, 1e308, -1e308, 1e308)
    end = timezone.now()
    data = selectors.series(ops_kpi, end - dt.timedelta(hours=2), end, max_points=2)
    _finite_points(data.points)
    assert sum(point[4] for point in data.points) == 4
    assert data.points[0][1] == pytest.approx(5e307)


def test_ordinary_averages_are_unchanged(ops_kpi):
    _old_rows(ops_kpi, 0.1, 0.2, 0.3, 1e-300)
    (row,) = selectors.calendar_buckets(ops_kpi, "day", None, None)
    assert row[1] == pytest.approx((0.1 + 0.2 + 0.3 + 1e-300) / 4, rel=1e-15)


def _pages_of(kpi):
    """The pages that chart or export a KPI's values."""
    initiative = kpi.initiative
    return (
        reverse("kpi-chart", kwargs={"kpi_id": kpi.pk}) + "?range=24h",
        reverse("initiative-kpis", kwargs={"key": initiative.key}) + "?range=24h",
        reverse("unit-dashboard", kwargs={"unit_id": initiative.business_unit_id}),
        reverse("kpi-csv", kwargs={"kpi_id": kpi.pk}) + "?range=24h",
    )


def test_every_chart_of_a_kpi_with_huge_old_values_answers(client, ops_kpi, stakeholder):
    _old_rows(ops_kpi, 1e308, 1e308, 5.0)
    client.force_login(stakeholder)
    for url in _pages_of(ops_kpi):
        response = client.get(url)
        assert response.status_code == 200, url
        b"".join(response.streaming_content) if response.streaming else response.content
    chart = client.get(reverse("kpi-chart", kwargs={"kpi_id": ops_kpi.pk}) + "?range=24h")
    html = chart.content.decode()
    data = html.split(f'id="chart-data-{ops_kpi.pk}" type="application/json">')[1]
    parsed = json.loads(data.split("</script>")[0])  # strict JSON: no Infinity / NaN
    _finite_points(parsed["points"])


def test_the_api_buckets_of_huge_old_values_answer(ops_kpi, stakeholder):
    from rest_framework.test import APIClient

    _old_rows(ops_kpi, 1e308, 1e308, 5.0)
    api = authenticate(APIClient(), stakeholder)
    for query in ({"bucket": "hour"}, {"bucket": "month"}, {}):
        response = api.get(f"{API}/kpis/{ops_kpi.pk}/measurements/", query)
        assert response.status_code == 200, response.content[:300]
        _finite_points(response.json()["results"] if query else [])


def _non_finite_rows(kpi) -> list[float]:
    values = [math.inf, -math.inf, 3.0]
    if connection.vendor == "postgresql":
        values.append(math.nan)  # SQLite stores NaN as NULL, which the column refuses
    _old_rows(kpi, *values)
    return values


def test_non_finite_old_values_are_left_out_of_charts_and_shown_as_null(ops_kpi, stakeholder):
    from rest_framework.test import APIClient

    _non_finite_rows(ops_kpi)
    (row,) = selectors.calendar_buckets(ops_kpi, "day", None, None)
    assert row[1:] == [3.0, 3.0, 3.0, 1]
    end = timezone.now()
    (point,) = selectors.series(ops_kpi, end - dt.timedelta(hours=2), end, max_points=1).points
    assert point[1:] == (3.0, 3.0, 3.0, 1)
    api = authenticate(APIClient(), stakeholder)
    response = api.get(f"{API}/kpis/{ops_kpi.pk}/measurements/")
    assert response.status_code == 200
    values = [value for _, value in response.json()["results"]]
    assert values.count(None) == len(values) - 1 and 3.0 in values
    json.loads(response.content)  # strict JSON


def test_pages_with_non_finite_old_values_answer(client, ops_kpi, stakeholder):
    _non_finite_rows(ops_kpi)
    client.force_login(stakeholder)
    for url in _pages_of(ops_kpi):
        response = client.get(url)
        assert response.status_code == 200, url
