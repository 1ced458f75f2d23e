"""KPI health: one function used everywhere (tiles, board cards, API, alerts)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import models

from kpis.models import Direction, ScheduleKind
from kpis.scheduling import next_after

if TYPE_CHECKING:
    from kpis.models import KPI, Job

STALE_PERIODS = 3


class Health(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    UNKNOWN = "unknown", "No value yet"


SEVERITY = {Health.UNKNOWN: 0, Health.HEALTHY: 1, Health.WARNING: 2, Health.CRITICAL: 3}


def kpi_health(kpi: KPI, value: float | None) -> Health:
    """The status of a value against the KPI's thresholds and direction.

    A value exactly on a threshold has reached it: for "higher is better" a value at or below
    the critical threshold is critical, at or below the warning threshold a warning; for
    "lower is better" the same at or above. Missing thresholds are simply not checked.
    """
    if value is None:
        return Health.UNKNOWN
    higher = kpi.direction == Direction.HIGHER
    for threshold, level in (
        (kpi.critical_threshold, Health.CRITICAL),
        (kpi.warning_threshold, Health.WARNING),
    ):
        if threshold is None:
            continue
        if (higher and value <= threshold) or (not higher and value >= threshold):
            return level
    return Health.HEALTHY


def worst(statuses: list[Health]) -> Health:
    return max(statuses, key=lambda h: SEVERITY[h], default=Health.UNKNOWN)


def schedule_period(job: Job | None, around: dt.datetime) -> dt.timedelta | None:
    """The time between two fire times of the job's schedule near `around`."""
    if job is None:
        return None
    if job.schedule_kind == ScheduleKind.INTERVAL:
        return dt.timedelta(seconds=job.interval_seconds or 0) or None
    first = next_after(job.schedule_kind, job.cron, None, around)
    return next_after(job.schedule_kind, job.cron, None, first) - first


def is_stale(job: Job | None, last_as_of: dt.datetime | None, now: dt.datetime) -> bool:
    """No value for three schedule periods: three fire times of the job's schedule have
    passed since the last value (so a business-hours cron is not stale over a weekend).
    Only KPIs whose job is enabled can be stale."""
    if job is None or not job.enabled:
        return False
    if last_as_of is None:
        return True
    moment = last_as_of
    for _ in range(STALE_PERIODS):
        moment = next_after(job.schedule_kind, job.cron, job.interval_seconds, moment)
        if moment >= now:
            return False
    return True
