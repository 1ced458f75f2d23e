from __future__ import annotations

import datetime as dt

import pytest

from bizdevops.errors import DomainError
from jobs.models import INTERVAL_MAX_SECONDS as MAX_INTERVAL_SECONDS
from jobs.models import INTERVAL_MIN_SECONDS as MIN_INTERVAL_SECONDS
from jobs.scheduling import check_schedule, next_after, upcoming

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# check_schedule: cron


@pytest.mark.parametrize(
    "cron", ["* * * * *", "*/5 * * * *", "0 9 * * 1-5", "30 6 1 * *", "0 0 * * 0", "  0  9 * * * "]
)
def test_valid_cron_expressions(cron):
    check_schedule("cron", cron, None)


@pytest.mark.parametrize("cron", ["", "   ", None])
def test_cron_is_required(cron):
    with pytest.raises(DomainError) as excinfo:
        check_schedule("cron", cron, None)
    assert excinfo.value.field == "cron"
    assert excinfo.value.code == "required"


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "@daily", "0 9 * * * 2030", "*/5"])
def test_cron_needs_five_fields(cron):
    with pytest.raises(DomainError) as excinfo:
        check_schedule("cron", cron, None)
    assert excinfo.value.field == "cron"
    assert "five fields" in excinfo.value.message


@pytest.mark.parametrize(
    "cron", ["60 * * * *", "* 24 * * *", "* * 32 * *", "* * * 13 *", "a b c d e", "*/0 * * * *"]
)
def test_invalid_cron_expressions(cron):
    with pytest.raises(DomainError) as excinfo:
        check_schedule("cron", cron, 300)
    assert excinfo.value.field == "cron"
    assert cron in excinfo.value.message


def test_cron_schedule_ignores_the_interval_field():
    check_schedule("cron", "*/5 * * * *", 3)


# check_schedule: interval


@pytest.mark.parametrize("seconds", [MIN_INTERVAL_SECONDS, 60, 86400, MAX_INTERVAL_SECONDS])
def test_interval_bounds_inclusive(seconds):
    check_schedule("interval", "", seconds)


@pytest.mark.parametrize("seconds", [-60, 0, 1, 9, MAX_INTERVAL_SECONDS + 1, 10 * 366 * 86400])
def test_interval_out_of_bounds(seconds):
    with pytest.raises(DomainError) as excinfo:
        check_schedule("interval", "", seconds)
    assert excinfo.value.field == "interval_seconds"


def test_interval_bounds_are_ten_seconds_and_366_days():
    assert MIN_INTERVAL_SECONDS == 10
    assert MAX_INTERVAL_SECONDS == 366 * 24 * 3600


def test_interval_is_required():
    with pytest.raises(DomainError) as excinfo:
        check_schedule("interval", "*/5 * * * *", None)
    assert excinfo.value.field == "interval_seconds"
    assert excinfo.value.code == "required"


@pytest.mark.parametrize("kind", ["", "weekly", "CRON", None])
def test_unknown_schedule_kind(kind):
    with pytest.raises(DomainError) as excinfo:
        check_schedule(kind, "* * * * *", 60)
    assert excinfo.value.field == "schedule_kind"


# next_after


def test_next_after_interval_adds_the_interval():
    start = at(2025, 3, 1, 10, 7, 30)
    assert next_after("interval", "", 300, start) == at(2025, 3, 1, 10, 12, 30)
    assert next_after("interval", "", 86400, start) == at(2025, 3, 2, 10, 7, 30)


def test_next_after_cron_next_fire_time():
    assert next_after("cron", "*/15 * * * *", None, at(2025, 3, 1, 10, 7, 30)) == at(
        2025, 3, 1, 10, 15
    )
    assert next_after("cron", "0 9 * * *", None, at(2025, 3, 1, 10, 0)) == at(2025, 3, 2, 9, 0)


def test_next_after_cron_is_strictly_after_a_fire_time():
    assert next_after("cron", "*/15 * * * *", None, at(2025, 3, 1, 10, 15)) == at(
        2025, 3, 1, 10, 30
    )


def test_next_after_cron_weekdays():
    # 2025-03-01 is a Saturday: "weekdays at 9" next fires on Monday 3 March.
    assert next_after("cron", "0 9 * * 1-5", None, at(2025, 3, 1, 8, 0)) == at(2025, 3, 3, 9, 0)


def test_next_after_cron_result_is_aware():
    fire = next_after("cron", "*/5 * * * *", None, at(2025, 3, 1, 10, 1))
    assert fire.tzinfo is not None


@pytest.mark.parametrize(
    ("after", "expected_utc"),
    [
        (at(2025, 1, 15, 12, 0), at(2025, 1, 16, 8, 0)),  # CET, UTC+1
        (at(2025, 7, 15, 12, 0), at(2025, 7, 16, 7, 0)),  # CEST, UTC+2
        (at(2025, 7, 16, 6, 30), at(2025, 7, 16, 7, 0)),
    ],
)
def test_cron_is_evaluated_in_the_project_time_zone(settings, after, expected_utc):
    settings.TIME_ZONE = "Europe/Berlin"
    fire = next_after("cron", "0 9 * * *", None, after)
    assert fire == expected_utc
    assert fire.astimezone(dt.UTC) == expected_utc


def test_cron_in_utc_when_the_project_is_in_utc(settings):
    settings.TIME_ZONE = "UTC"
    assert next_after("cron", "0 9 * * *", None, at(2025, 7, 15, 12, 0)) == at(2025, 7, 16, 9, 0)


def test_cron_in_another_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # 09:00 EDT is 13:00 UTC.
    assert next_after("cron", "0 9 * * *", None, at(2025, 7, 15, 12, 0)) == at(2025, 7, 15, 13, 0)


def test_interval_does_not_depend_on_the_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert next_after("interval", "", 3600, at(2025, 10, 26, 0, 30)) == at(2025, 10, 26, 1, 30)


def test_cron_that_never_fires_is_a_domain_error():
    with pytest.raises(DomainError) as excinfo:
        next_after("cron", "0 0 31 2 *", None, at(2025, 1, 1))
    assert excinfo.value.field == "cron"


# upcoming


def test_upcoming_interval_gives_five_increasing_times():
    start = at(2025, 3, 1, 10, 0)
    times = upcoming("interval", "", 600, start)
    assert times == [start + dt.timedelta(minutes=10 * n) for n in range(1, 6)]


def test_upcoming_cron_gives_five_increasing_times():
    times = upcoming("cron", "0 */6 * * *", None, at(2025, 3, 1, 1, 0))
    assert times == [
        at(2025, 3, 1, 6),
        at(2025, 3, 1, 12),
        at(2025, 3, 1, 18),
        at(2025, 3, 2, 0),
        at(2025, 3, 2, 6),
    ]


def test_upcoming_count():
    assert len(upcoming("interval", "", 60, at(2025, 3, 1), count=3)) == 3


@pytest.mark.parametrize(
    "start", [at(2025, 10, 25, 22, 30), at(2025, 3, 29, 23, 30)], ids=["fall-back", "spring-fwd"]
)
def test_upcoming_hourly_cron_across_dst_is_strictly_increasing(settings, start):
    settings.TIME_ZONE = "Europe/Berlin"
    # Aware datetimes in one zone subtract by wall clock: compare them in UTC.
    times = [t.astimezone(dt.UTC) for t in upcoming("cron", "0 * * * *", None, start)]
    assert len(times) == 5
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {3600.0}


@pytest.mark.parametrize(
    ("kind", "cron", "seconds", "field"),
    [("cron", "61 * * * *", None, "cron"), ("interval", "", 5, "interval_seconds")],
)
def test_upcoming_validates_first(kind, cron, seconds, field):
    with pytest.raises(DomainError) as excinfo:
        upcoming(kind, cron, seconds, at(2025, 3, 1))
    assert excinfo.value.field == field
