"""Schedule math: cron expressions (croniter) and fixed intervals. Pure functions."""

from __future__ import annotations

import datetime as dt

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.utils import timezone

from bizdevops.errors import DomainError
from kpis.models import ScheduleKind

MIN_INTERVAL_SECONDS = 10
MAX_INTERVAL_SECONDS = 366 * 86400


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
        if not MIN_INTERVAL_SECONDS <= interval_seconds <= MAX_INTERVAL_SECONDS:
            raise DomainError(
                f"The interval must be between {MIN_INTERVAL_SECONDS} seconds and 366 days.",
                field="interval_seconds",
            )
    else:
        raise DomainError(
            "The schedule is a cron expression or an interval.", field="schedule_kind"
        )


def next_after(
    kind: str, cron: str, interval_seconds: int | None, after: dt.datetime
) -> dt.datetime:
    """The first fire time strictly after `after` (cron in the project's time zone)."""
    if kind == ScheduleKind.INTERVAL:
        return after + dt.timedelta(seconds=interval_seconds or 0)
    local = timezone.localtime(after)
    try:
        fire: dt.datetime = croniter(cron.strip(), local).get_next(dt.datetime)
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
    latest: dt.datetime = croniter(cron.strip(), timezone.localtime(now)).get_prev(dt.datetime)
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
