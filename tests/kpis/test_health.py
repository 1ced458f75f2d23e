"""KPI health (healthy / warning / critical / unknown), the worst of several, and staleness.

Pure functions on unsaved model instances: no database needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kpis.health import STALE_PERIODS, Health, is_stale, kpi_health, schedule_period, worst
from kpis.models import KPI, Direction, Job, ScheduleKind

UTC = dt.UTC


def kpi(
    direction: str = Direction.HIGHER,
    *,
    target: float | None = None,
    warning: float | None = None,
    critical: float | None = None,
) -> KPI:
    return KPI(
        name="k",
        direction=direction,
        target=target,
        warning_threshold=warning,
        critical_threshold=critical,
    )


def interval_job(seconds: int, *, enabled: bool = True) -> Job:
    return Job(schedule_kind=ScheduleKind.INTERVAL, interval_seconds=seconds, enabled=enabled)


def cron_job(cron: str, *, enabled: bool = True) -> Job:
    return Job(schedule_kind=ScheduleKind.CRON, cron=cron, enabled=enabled)


# kpi_health: higher is better (critical <= warning <= target)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100.0, Health.HEALTHY),
        (90.0, Health.HEALTHY),  # on target
        (80.000001, Health.HEALTHY),  # just above the warning threshold
        (80.0, Health.WARNING),  # exactly on the warning threshold: reached
        (79.9, Health.WARNING),
        (50.000001, Health.WARNING),
        (50.0, Health.CRITICAL),  # exactly on the critical threshold: reached
        (49.0, Health.CRITICAL),
        (-1e9, Health.CRITICAL),
        (0.0, Health.CRITICAL),
    ],
)
def test_higher_is_better(value: float, expected: Health) -> None:
    assert kpi_health(kpi(Direction.HIGHER, target=90, warning=80, critical=50), value) == expected


# kpi_health: lower is better (critical >= warning >= target)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, Health.HEALTHY),
        (-3.0, Health.HEALTHY),
        (2.0, Health.HEALTHY),  # on target
        (4.999999, Health.HEALTHY),
        (5.0, Health.WARNING),  # exactly on the warning threshold: reached
        (9.999999, Health.WARNING),
        (10.0, Health.CRITICAL),  # exactly on the critical threshold: reached
        (1e9, Health.CRITICAL),
    ],
)
def test_lower_is_better(value: float, expected: Health) -> None:
    assert kpi_health(kpi(Direction.LOWER, target=2, warning=5, critical=10), value) == expected


def test_warning_and_critical_on_the_same_value_is_critical() -> None:
    assert kpi_health(kpi(Direction.HIGHER, warning=50, critical=50), 50) == Health.CRITICAL
    assert kpi_health(kpi(Direction.LOWER, warning=50, critical=50), 50) == Health.CRITICAL
    assert kpi_health(kpi(Direction.HIGHER, warning=50, critical=50), 50.5) == Health.HEALTHY


def test_a_zero_threshold_is_a_threshold_not_a_missing_one() -> None:
    higher = kpi(Direction.HIGHER, warning=0.5, critical=0.0)
    assert kpi_health(higher, 0.0) == Health.CRITICAL
    assert kpi_health(higher, 0.25) == Health.WARNING
    assert kpi_health(higher, 1.0) == Health.HEALTHY
    lower = kpi(Direction.LOWER, warning=0.0, target=-1.0)
    assert kpi_health(lower, 0.0) == Health.WARNING
    assert kpi_health(lower, -0.5) == Health.HEALTHY


@pytest.mark.parametrize("direction", [Direction.HIGHER, Direction.LOWER])
@pytest.mark.parametrize("value", [-1e12, -1.0, 0.0, 1.0, 1e12])
def test_without_thresholds_every_value_is_healthy(direction: str, value: float) -> None:
    assert kpi_health(kpi(direction), value) == Health.HEALTHY
    # A target alone sets no threshold.
    assert kpi_health(kpi(direction, target=50), value) == Health.HEALTHY


def test_only_a_critical_threshold() -> None:
    only_critical = kpi(Direction.HIGHER, target=90, critical=50)
    assert kpi_health(only_critical, 60) == Health.HEALTHY  # no warning band
    assert kpi_health(only_critical, 50) == Health.CRITICAL
    lower = kpi(Direction.LOWER, critical=10)
    assert kpi_health(lower, 9.99) == Health.HEALTHY
    assert kpi_health(lower, 10) == Health.CRITICAL


def test_only_a_warning_threshold_is_never_critical() -> None:
    only_warning = kpi(Direction.HIGHER, warning=80)
    assert kpi_health(only_warning, 80) == Health.WARNING
    assert kpi_health(only_warning, -1e9) == Health.WARNING
    assert kpi_health(only_warning, 80.1) == Health.HEALTHY
    lower = kpi(Direction.LOWER, warning=5)
    assert kpi_health(lower, 1e9) == Health.WARNING
    assert kpi_health(lower, 4) == Health.HEALTHY


@pytest.mark.parametrize("direction", [Direction.HIGHER, Direction.LOWER])
def test_no_value_is_unknown(direction: str) -> None:
    assert kpi_health(kpi(direction, target=1, warning=2, critical=3), None) == Health.UNKNOWN
    assert kpi_health(kpi(direction), None) == Health.UNKNOWN


def test_health_values_are_the_strings_templates_and_the_api_use() -> None:
    assert [h.value for h in Health] == ["healthy", "warning", "critical", "unknown"]
    assert Health.UNKNOWN.label == "No value yet"


# worst


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Health.UNKNOWN),
        ([Health.UNKNOWN], Health.UNKNOWN),
        ([Health.HEALTHY], Health.HEALTHY),
        ([Health.UNKNOWN, Health.HEALTHY], Health.HEALTHY),
        ([Health.HEALTHY, Health.UNKNOWN], Health.HEALTHY),
        ([Health.HEALTHY, Health.WARNING, Health.HEALTHY], Health.WARNING),
        ([Health.WARNING, Health.UNKNOWN], Health.WARNING),
        ([Health.CRITICAL, Health.WARNING, Health.HEALTHY, Health.UNKNOWN], Health.CRITICAL),
        ([Health.HEALTHY, Health.HEALTHY, Health.CRITICAL], Health.CRITICAL),
    ],
)
def test_worst(statuses: list[Health], expected: Health) -> None:
    assert worst(statuses) == expected
    assert worst(list(reversed(statuses))) == expected


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
