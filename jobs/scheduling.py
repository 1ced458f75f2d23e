"""Schedule math: cron expressions (croniter) and fixed intervals, and whether a KPI is
stale by its job's schedule. Pure functions."""

from __future__ import annotations

import copy
import datetime as dt
import functools
from typing import TYPE_CHECKING

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.utils import timezone

from bizdevops.errors import DomainError
from jobs.models import INTERVAL_MAX_SECONDS, INTERVAL_MIN_SECONDS, ScheduleKind

if TYPE_CHECKING:
    from jobs.models import Job


def check_schedule(kind: str, cron: str, interval_seconds: int | None) -> None:
    """DomainError naming the field at fault, or nothing."""
    if kind == ScheduleKind.CRON:
        expression = (cron or "").strip()
        if not expression:
            raise DomainError("A cron expression is required.", field="cron", code="required")
        if len(expression.split()) != 5:
            raise DomainError(
                "A cron expression has five fields: minute hour day month weekday.", field="cron"
            )
        if not croniter.is_valid(expression):
            raise DomainError(f"{expression!r} is not a valid cron expression.", field="cron")
    elif kind == ScheduleKind.INTERVAL:
        if interval_seconds is None:
            raise DomainError("An interval is required.", field="interval_seconds", code="required")
        if not INTERVAL_MIN_SECONDS <= interval_seconds <= INTERVAL_MAX_SECONDS:
            raise DomainError(
                f"The interval must be between {INTERVAL_MIN_SECONDS} seconds and "
                f"{INTERVAL_MAX_SECONDS // 86400} days.",
                field="interval_seconds",
            )
    else:
        raise DomainError(
            "The schedule is a cron expression or an interval.", field="schedule_kind"
        )


# Distinct cron expressions kept parsed (a portfolio has few: most jobs share a handful).
PARSED_CRON_CACHE = 1024


@functools.lru_cache(maxsize=PARSED_CRON_CACHE)
def _parsed(cron: str) -> croniter:
    """The expression parsed once: building a croniter (parsing and expanding the fields)
    was 35 % of a board render at 10,000 initiatives, and the dispatcher needs two fire
    times per due job. The template holds no time zone: each use gets its own copy and its
    own start (`_cron`), so the project's TIME_ZONE may change and threads share nothing
    that is written."""
    return croniter(cron)


def _cron(cron: str, start: dt.datetime) -> croniter:
    """A croniter for `cron` starting at `start` (aware, local), as `croniter(cron, start)`
    would build it, from the parsed template: the constructor only parses the expression and
    sets the start, which `set_current` does alone (croniter 7)."""
    fresh = copy.copy(_parsed(cron.strip()))
    fresh.set_current(start, force=True)
    return fresh


def next_after(
    kind: str, cron: str, interval_seconds: int | None, after: dt.datetime
) -> dt.datetime:
    """The first fire time strictly after `after` (cron in the project's time zone)."""
    if kind == ScheduleKind.INTERVAL:
        return after + dt.timedelta(seconds=interval_seconds or 0)
    local = timezone.localtime(after)
    try:
        fire: dt.datetime = _cron(cron, local).get_next(dt.datetime)
    except (CroniterBadCronError, CroniterBadDateError) as error:
        raise DomainError(f"{cron!r}: {error}", field="cron") from None
    return fire


def latest_due(
    kind: str, cron: str, interval_seconds: int | None, due: dt.datetime, now: dt.datetime
) -> dt.datetime:
    """The most recent fire time at or before `now`, starting from a due moment `due`: a job
    that missed several fire times is caught up once, as of the latest of them."""
    if due >= now:
        return due
    if kind == ScheduleKind.INTERVAL:
        step = dt.timedelta(seconds=interval_seconds or 1)
        return due + step * ((now - due) // step)
    latest: dt.datetime = _cron(cron, timezone.localtime(now)).get_prev(dt.datetime)
    return max(due, latest)


def upcoming(
    kind: str, cron: str, interval_seconds: int | None, start: dt.datetime, count: int = 5
) -> list[dt.datetime]:
    check_schedule(kind, cron, interval_seconds)
    times = []
    moment = start
    for _ in range(count):
        moment = next_after(kind, cron, interval_seconds, moment)
        times.append(moment)
    return times


# A KPI is stale after this many fire times of its job without a value.
STALE_PERIODS = 3


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
