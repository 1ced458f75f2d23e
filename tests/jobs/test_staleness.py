"""Whether a KPI is stale: three fire times of its job's schedule without a value. Pure
functions on unsaved model instances: no database needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobs.models import Job, ScheduleKind
from jobs.scheduling import STALE_PERIODS, is_stale, schedule_period

UTC = dt.UTC


def interval_job(seconds: int, *, enabled: bool = True) -> Job:
    return Job(schedule_kind=ScheduleKind.INTERVAL, interval_seconds=seconds, enabled=enabled)


def cron_job(cron: str, *, enabled: bool = True) -> Job:
    return Job(schedule_kind=ScheduleKind.CRON, cron=cron, enabled=enabled)


# is_stale

NOW = dt.datetime(2025, 3, 12, 12, 0, tzinfo=UTC)  # a Wednesday


def test_interval_job_is_stale_after_three_periods() -> None:
    job = interval_job(300)
    assert STALE_PERIODS == 3
    assert schedule_period(job, NOW) == dt.timedelta(minutes=5)
    assert not is_stale(job, NOW, NOW)
    assert not is_stale(job, NOW - dt.timedelta(minutes=14, seconds=59), NOW)
    # Exactly three periods without a value is not yet stale; a moment later it is.
    assert not is_stale(job, NOW - dt.timedelta(minutes=15), NOW)
    assert is_stale(job, NOW - dt.timedelta(minutes=15, microseconds=1), NOW)
    assert is_stale(job, NOW - dt.timedelta(days=30), NOW)


def test_an_enabled_job_without_any_value_is_stale() -> None:
    assert is_stale(interval_job(300), None, NOW)
    assert is_stale(cron_job("0 6 * * *"), None, NOW)


def test_a_kpi_without_job_or_with_a_disabled_job_is_never_stale() -> None:
    long_ago = NOW - dt.timedelta(days=365)
    assert not is_stale(None, long_ago, NOW)
    assert not is_stale(None, None, NOW)
    assert not is_stale(interval_job(300, enabled=False), long_ago, NOW)
    assert not is_stale(interval_job(300, enabled=False), None, NOW)
    assert not is_stale(cron_job("0 6 * * *", enabled=False), long_ago, NOW)


def test_daily_cron_job_is_stale_after_three_days(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    job = cron_job("0 6 * * *")
    assert schedule_period(job, NOW) == dt.timedelta(days=1)
    last = dt.datetime(2025, 3, 9, 6, 0, tzinfo=UTC)  # Sunday's value
    assert not is_stale(job, last, dt.datetime(2025, 3, 12, 6, 0, tzinfo=UTC))
    assert is_stale(job, last, dt.datetime(2025, 3, 12, 6, 0, 1, tzinfo=UTC))


def test_quarter_hourly_cron_job(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    job = cron_job("*/15 * * * *")
    assert schedule_period(job, NOW) == dt.timedelta(minutes=15)
    assert not is_stale(job, NOW - dt.timedelta(minutes=45), NOW)
    assert is_stale(job, NOW - dt.timedelta(minutes=46), NOW)


def test_a_business_hours_job_is_not_stale_over_the_weekend(
    settings: Any,
) -> None:
    """Hourly on weekdays 9-17: the last value of the week is Friday 17:00 and the next fire
    time is Monday 09:00. On Saturday no run was missed at all, so the KPI is not stale.

    (is_stale measures the period next to `now` (Monday 09:00 → 10:00, one hour) and compares
    the time since the last value (19 h) with three of those periods: stale all weekend.)"""
    settings.TIME_ZONE = "UTC"
    job = cron_job("0 9-17 * * 1-5")
    friday_last = dt.datetime(2025, 3, 14, 17, 0, tzinfo=UTC)
    saturday_noon = dt.datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
    monday_early = dt.datetime(2025, 3, 17, 8, 0, tzinfo=UTC)
    assert not is_stale(job, friday_last, saturday_noon)
    assert not is_stale(job, friday_last, monday_early)
    # Three missed fire times (Monday 09:00, 10:00 and 11:00) do make it stale.
    assert is_stale(job, friday_last, dt.datetime(2025, 3, 17, 11, 0, 1, tzinfo=UTC))
