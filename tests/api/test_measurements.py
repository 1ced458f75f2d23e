"""Measurements: pushing values (idempotent per as_of), raw values with cursor pagination,
and buckets checked against a direct computation."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from django.utils import timezone

from kpis.models import Measurement, Origin
from phases.models import Decision
from tests.api.helpers import API, error_of
from tests.factories import decide

pytestmark = pytest.mark.django_db

UTC = dt.UTC
START = dt.datetime(2026, 1, 27, 22, 30, tzinfo=UTC)


def murl(kpi) -> str:
    return f"{API}/kpis/{kpi.pk}/measurements/"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def stored(kpi) -> list[tuple[dt.datetime, float]]:
    return list(Measurement.objects.filter(kpi=kpi).order_by("as_of").values_list("as_of", "value"))


@pytest.fixture
def pusher(api_as, engineer):
    """The data engineer on the team: allowed to push."""
    return api_as(engineer)


# Pushing


def test_push_one_value(pusher, dev_kpi):
    response = pusher.post(
        murl(dev_kpi), {"as_of": "2026-03-01T12:00:00Z", "value": 87.5}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 1, "updated": 0}
    row = Measurement.objects.get(kpi=dev_kpi)
    assert row.as_of == dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert row.value == 87.5
    assert row.origin == Origin.API
    assert row.run is None


def test_pushing_the_same_as_of_again_updates(pusher, dev_kpi):
    first = pusher.post(
        murl(dev_kpi), {"as_of": "2026-03-01T12:00:00Z", "value": 1.0}, format="json"
    )
    again = pusher.post(
        murl(dev_kpi), {"as_of": "2026-03-01T12:00:00Z", "value": 2.0}, format="json"
    )

    assert first.json() == {"created": 1, "updated": 0}
    assert again.status_code == 200
    assert again.json() == {"created": 0, "updated": 1}
    assert stored(dev_kpi) == [(dt.datetime(2026, 3, 1, 12, tzinfo=UTC), 2.0)]


def test_the_same_instant_in_another_offset_is_the_same_measurement(pusher, dev_kpi):
    pusher.post(murl(dev_kpi), {"as_of": "2026-03-01T12:00:00Z", "value": 1.0}, format="json")

    response = pusher.post(
        murl(dev_kpi), {"as_of": "2026-03-01T13:00:00+01:00", "value": 3.0}, format="json"
    )

    assert response.json() == {"created": 0, "updated": 1}
    assert stored(dev_kpi) == [(dt.datetime(2026, 3, 1, 12, tzinfo=UTC), 3.0)]


def test_push_a_list_of_new_and_known_values(pusher, dev_kpi):
    pusher.post(
        murl(dev_kpi),
        [
            {"as_of": "2026-03-01T00:00:00Z", "value": 1},
            {"as_of": "2026-03-02T00:00:00Z", "value": 2},
        ],
        format="json",
    )

    response = pusher.post(
        murl(dev_kpi),
        [{"as_of": f"2026-03-0{day}T00:00:00Z", "value": day * 10} for day in range(1, 6)],
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {"created": 3, "updated": 2}
    assert [value for _, value in stored(dev_kpi)] == [10, 20, 30, 40, 50]


def test_a_moment_given_twice_in_one_list_counts_once_and_the_last_wins(pusher, dev_kpi):
    response = pusher.post(
        murl(dev_kpi),
        [
            {"as_of": "2026-03-01T00:00:00Z", "value": 1},
            {"as_of": "2026-03-01T01:00:00+01:00", "value": 2},
        ],
        format="json",
    )

    assert response.json() == {"created": 1, "updated": 0}
    assert stored(dev_kpi) == [(dt.datetime(2026, 3, 1, tzinfo=UTC), 2.0)]


def test_plain_and_other_lists_are_read_alike(pusher, dev_kpi):
    # A list of plain items (ISO strings, JSON numbers) takes a fast path; one item in
    # another form MeasurementIn accepts (a number as a string) sends the list through it.
    plain = [
        {"as_of": "2026-03-01T05:30:00+05:30", "value": 4},
        {"as_of": "2026-03-01T01:00:00.250000Z", "value": -2.5},
    ]
    other = [{"as_of": "2026-03-02T05:30:00+05:30", "value": "4"}, plain[1] | {"value": 7}]
    for body in (plain, other):
        response = pusher.post(murl(dev_kpi), body, format="json")
        assert response.status_code == 200, response.json()
    assert stored(dev_kpi) == [
        (dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 4.0),
        (dt.datetime(2026, 3, 1, 1, 0, 0, 250000, tzinfo=UTC), 7.0),
        (dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC), 4.0),
    ]


def test_a_plain_list_out_of_bounds_is_refused_item_by_item(pusher, dev_kpi):
    response = pusher.post(
        murl(dev_kpi),
        [
            {"as_of": "2026-03-01T00:00:00Z", "value": 1},
            {"as_of": "2026-03-01T01:00:00Z", "value": 1e16},
        ],
        format="json",
    )

    assert response.status_code == 400
    assert error_of(response)["fields"] == {
        "[1].value": ["The value must be a number from -1e+15 to 1e+15."]
    }
    assert not Measurement.objects.exists()


def test_a_plain_list_older_than_the_retention_is_refused_item_by_item(pusher, dev_kpi, settings):
    """The plain-list fast path asks the service's own check (the retention cutoff included),
    so every item at fault is named, not only the first one the service would stop at."""
    settings.MEASUREMENT_RAW_RETENTION_DAYS = 30
    old = timezone.now() - dt.timedelta(days=40)
    response = pusher.post(
        murl(dev_kpi),
        [
            {"as_of": old.isoformat(), "value": 1},
            {"as_of": (old + dt.timedelta(hours=1)).isoformat(), "value": 2},
        ],
        format="json",
    )

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"[0].as_of", "[1].as_of"}
    assert not Measurement.objects.exists()


def test_ten_thousand_values_in_one_push(pusher, dev_kpi):
    values = [
        {"as_of": iso(START + dt.timedelta(minutes=i)), "value": float(i)} for i in range(10_000)
    ]

    response = pusher.post(murl(dev_kpi), values, format="json")

    assert response.status_code == 200
    assert response.json() == {"created": 10_000, "updated": 0}
    assert Measurement.objects.filter(kpi=dev_kpi).count() == 10_000


def test_ten_thousand_and_one_values_are_refused(pusher, dev_kpi):
    values = [{"as_of": iso(START + dt.timedelta(minutes=i)), "value": 1.0} for i in range(10_001)]

    response = pusher.post(murl(dev_kpi), values, format="json")

    assert response.status_code == 400
    assert "10000" in str(error_of(response)["fields"])
    assert not Measurement.objects.exists()


def test_an_empty_list_is_refused(pusher, dev_kpi):
    response = pusher.post(murl(dev_kpi), [], format="json")

    assert response.status_code == 400
    error_of(response)


def test_one_bad_value_refuses_the_whole_push(pusher, dev_kpi):
    response = pusher.post(
        murl(dev_kpi),
        [
            {"as_of": "2026-03-01T00:00:00Z", "value": 1},
            {"as_of": "2026-03-02T00:00:00", "value": 2},
        ],
        format="json",
    )

    assert response.status_code == 400
    assert not Measurement.objects.exists()


def test_no_push_to_a_closed_initiative(pusher, pm, dev_initiative, dev_kpi):
    decide(dev_initiative, Decision.KILL, pm)

    response = pusher.post(
        murl(dev_kpi), {"as_of": "2026-03-01T00:00:00Z", "value": 1}, format="json"
    )

    assert response.status_code == 409
    assert not Measurement.objects.exists()


def test_push_to_an_unknown_kpi_is_404(pusher, db):
    response = pusher.post(
        f"{API}/kpis/999999/measurements/",
        {"as_of": "2026-03-01T00:00:00Z", "value": 1},
        format="json",
    )

    assert response.status_code == 404


# Raw values


@pytest.fixture
def series(pusher, dev_kpi):
    """25 values, pushed in a shuffled order: as_of START + i hours, value i * 1.5."""
    order = [(i * 7) % 25 for i in range(25)]
    pusher.post(
        murl(dev_kpi),
        [{"as_of": iso(START + dt.timedelta(hours=i)), "value": i * 1.5} for i in order],
        format="json",
    )
    return [(START + dt.timedelta(hours=i), i * 1.5) for i in range(25)]


def as_pairs(rows):
    return [(dt.datetime.fromisoformat(at), value) for at, value in rows]


def test_raw_values_in_order(api_as, stakeholder, dev_kpi, series):
    response = api_as(stakeholder).get(murl(dev_kpi))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"bucket", "columns", "next", "previous", "results"}
    assert body["bucket"] is None
    assert body["columns"] == ["as_of", "value"]
    assert body["next"] is None
    assert as_pairs(body["results"]) == series


def test_the_cursor_walks_every_value_in_order(api_as, stakeholder, dev_kpi, series):
    client = api_as(stakeholder)
    seen, pages = [], []
    url, params = murl(dev_kpi), {"page_size": 7}
    while url:
        body = client.get(url, params).json()
        pages.append(len(body["results"]))
        seen.extend(as_pairs(body["results"]))
        url, params = body["next"], None

    assert pages == [7, 7, 7, 4]
    assert seen == series


def test_the_cursor_walks_back(api_as, stakeholder, dev_kpi, series):
    client = api_as(stakeholder)
    first = client.get(murl(dev_kpi), {"page_size": 10}).json()
    second = client.get(first["next"]).json()

    back = client.get(second["previous"]).json()

    assert as_pairs(second["results"]) == series[10:20]
    assert as_pairs(back["results"]) == series[:10]


def test_the_cursor_keeps_the_range(api_as, stakeholder, dev_kpi, series):
    client = api_as(stakeholder)
    params = {
        "from": iso(series[3][0]),
        "to": iso(series[20][0]),
        "page_size": 5,
    }
    seen, url = [], murl(dev_kpi)
    while url:
        body = client.get(url, params).json()
        seen.extend(as_pairs(body["results"]))
        url, params = body["next"], None

    # from is inclusive, to exclusive.
    assert seen == series[3:20]


def test_values_pushed_in_another_offset_come_back_in_utc(pusher, dev_kpi):
    pusher.post(murl(dev_kpi), {"as_of": "2026-03-01T05:30:00+05:30", "value": 4}, format="json")

    [[at, value]] = pusher.get(murl(dev_kpi)).json()["results"]

    assert dt.datetime.fromisoformat(at) == dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert value == 4


# Buckets


def _truncate(moment: dt.datetime, bucket: str) -> dt.datetime:
    local = timezone.localtime(moment)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return day
    if bucket == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def expected_buckets(values, bucket):
    groups = defaultdict(list)
    for at, value in values:
        groups[_truncate(at, bucket)].append(value)
    return [
        (start, sum(vs) / len(vs), min(vs), max(vs), len(vs))
        for start, vs in sorted(groups.items())
    ]


@pytest.fixture
def spread(pusher, dev_kpi):
    """80 values every 7 h 13 min from 27 January 22:30 UTC: across hours, days, weeks and
    the month boundary; values go up and down."""
    values = [
        (START + dt.timedelta(minutes=433 * i), round(((i * 37) % 101) / 3 - 10, 3))
        for i in range(80)
    ]
    response = pusher.post(
        murl(dev_kpi), [{"as_of": iso(at), "value": v} for at, v in values], format="json"
    )
    assert response.json() == {"created": 80, "updated": 0}
    return values


@pytest.mark.parametrize("bucket", ["hour", "day", "week", "month"])
def test_buckets_match_a_direct_computation(api_as, stakeholder, dev_kpi, spread, bucket):
    response = api_as(stakeholder).get(
        murl(dev_kpi),
        {
            "bucket": bucket,
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-04-01T00:00:00Z",
        },
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["bucket"] == bucket
    assert body["columns"] == ["start", "avg", "min", "max", "count"]
    assert (body["next"], body["previous"]) == (None, None)
    expected = expected_buckets(spread, bucket)
    got = [
        (dt.datetime.fromisoformat(start), avg, low, high, count)
        for start, avg, low, high, count in body["results"]
    ]
    assert [row[0] for row in got] == [row[0] for row in expected]
    assert [row[4] for row in got] == [row[4] for row in expected]
    assert sum(row[4] for row in got) == len(spread)
    for (_, avg, low, high, _), (_, e_avg, e_low, e_high, _) in zip(got, expected, strict=True):
        assert avg == pytest.approx(e_avg)
        assert (low, high) == (pytest.approx(e_low), pytest.approx(e_high))


def test_buckets_respect_the_range(api_as, stakeholder, dev_kpi, spread):
    start, end = spread[10][0], spread[30][0]

    response = api_as(stakeholder).get(
        murl(dev_kpi), {"bucket": "day", "from": iso(start), "to": iso(end)}
    )

    assert response.status_code == 200
    assert response.json()["results"] == [
        [start_.isoformat(), pytest.approx(avg), pytest.approx(low), pytest.approx(high), n]
        for start_, avg, low, high, n in expected_buckets(spread[10:30], "day")
    ]


def test_buckets_of_a_kpi_without_values_are_empty(api_as, stakeholder, dev_kpi):
    response = api_as(stakeholder).get(murl(dev_kpi), {"bucket": "week"})

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"bucket": "year"}, "bucket"),
        ({"bucket": "Day"}, "bucket"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "to"),
        ({"from": "2026-02-01T00:00:00"}, "from"),
        ({"to": "2026-02-01"}, "to"),
        ({"from": "last week"}, "from"),
        (
            {"bucket": "hour", "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "bucket",
        ),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5001}, "page_size"),
    ],
)
def test_bad_queries_are_400(api_as, stakeholder, dev_kpi, query, field):
    response = api_as(stakeholder).get(murl(dev_kpi), query)

    assert response.status_code == 400
    assert field in error_of(response)["fields"]


def test_measurements_of_an_unknown_kpi_are_404(api_as, stakeholder, db):
    assert api_as(stakeholder).get(f"{API}/kpis/999999/measurements/").status_code == 404
