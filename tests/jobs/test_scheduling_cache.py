"""Parsed cron expressions are cached (#12: building a croniter was 35 % of a board render):
the fire times are the ones a croniter built afresh gives, in the project's time zone, across
daylight-saving changes, and a change of TIME_ZONE is followed at once."""

from __future__ import annotations

import datetime as dt

import pytest
from croniter import croniter
from django.utils import timezone

from jobs import scheduling
from jobs.scheduling import latest_due, next_after

UTC = dt.UTC
CRONS = ["0 * * * *", "30 2 * * *", "*/15 * * * *", "0 9 * * 1-5", "0 0 1 * *", "5 1-3 * * 0"]
# Both changes of 2030: Europe on the last Sundays of March and October, the United States on
# the second Sunday of March and the first of November.
DST_CHANGES = {
    "Europe/Berlin": [dt.datetime(2030, 3, 31, tzinfo=UTC), dt.datetime(2030, 10, 27, tzinfo=UTC)],
    "America/New_York": [
        dt.datetime(2030, 3, 10, tzinfo=UTC),
        dt.datetime(2030, 11, 3, tzinfo=UTC),
    ],
}


def fresh_next(cron: str, after: dt.datetime) -> dt.datetime:
    """What next_after computed before the cache: a new croniter every time."""
    result: dt.datetime = croniter(cron, timezone.localtime(after)).get_next(dt.datetime)
    return result


def fresh_prev(cron: str, now: dt.datetime) -> dt.datetime:
    result: dt.datetime = croniter(cron, timezone.localtime(now)).get_prev(dt.datetime)
    return result


def around(change: dt.datetime) -> list[dt.datetime]:
    """Every 10 minutes from a day before the change to a day after it."""
    start = change - dt.timedelta(days=1)
    return [start + dt.timedelta(minutes=10 * step) for step in range(6 * 48)]


@pytest.mark.parametrize("zone", sorted(DST_CHANGES))
@pytest.mark.parametrize("cron", CRONS)
def test_cached_fire_times_are_a_fresh_croniters_across_dst_changes(settings, zone, cron):
    settings.TIME_ZONE = zone
    for change in DST_CHANGES[zone]:
        for moment in around(change):
            assert next_after("cron", cron, None, moment) == fresh_next(cron, moment), moment
            due = moment - dt.timedelta(days=2)
            expected = max(due, fresh_prev(cron, moment))
            assert latest_due("cron", cron, None, due, moment) == expected, moment


def test_the_hourly_cron_keeps_one_hour_steps_through_both_berlin_changes(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    for start in (
        dt.datetime(2030, 3, 30, 22, 30, tzinfo=UTC),
        dt.datetime(2030, 10, 26, 22, 30, tzinfo=UTC),
    ):
        moments = [start]
        for _ in range(6):
            moments.append(next_after("cron", "0 * * * *", None, moments[-1]))
        # Aware datetimes of one zone subtract by wall clock: compare them in UTC.
        fires = [moment.astimezone(UTC) for moment in moments[1:]]
        gaps = {(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)}
        assert gaps == {3600.0}


def test_the_cache_holds_no_time_zone(settings):
    after = dt.datetime(2030, 7, 15, 12, 0, tzinfo=UTC)
    settings.TIME_ZONE = "Europe/Berlin"
    assert next_after("cron", "0 9 * * *", None, after) == dt.datetime(
        2030, 7, 16, 7, 0, tzinfo=UTC
    )
    settings.TIME_ZONE = "America/New_York"
    assert next_after("cron", "0 9 * * *", None, after) == dt.datetime(
        2030, 7, 15, 13, 0, tzinfo=UTC
    )
    settings.TIME_ZONE = "UTC"
    assert next_after("cron", "0 9 * * *", None, after) == dt.datetime(
        2030, 7, 16, 9, 0, tzinfo=UTC
    )


def test_an_expression_is_parsed_once_and_spacing_does_not_matter():
    scheduling._parsed.cache_clear()
    after = dt.datetime(2030, 7, 15, 12, 0, tzinfo=UTC)

    for _ in range(20):
        next_after("cron", "*/5 * * * *", None, after)
        next_after("cron", " */5 * * * * ", None, after)

    info = scheduling._parsed.cache_info()
    assert (info.misses, info.hits) == (1, 39)


def test_an_invalid_expression_is_still_a_domain_error_and_is_not_cached():
    from bizdevops.errors import DomainError

    scheduling._parsed.cache_clear()
    for _ in range(2):
        with pytest.raises(DomainError):
            next_after("cron", "61 * * * *", None, dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert scheduling._parsed.cache_info().currsize == 0
