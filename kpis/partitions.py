"""The monthly partitions of measurements on PostgreSQL, and the retention of raw values
(MEASUREMENT_RAW_RETENTION_DAYS) on every database; docs/measurements.md "Partitioning and
retention".

Migration 0008 partitions `kpis_measurement` by UTC month of `as_of`, with a DEFAULT
partition for any moment no month partition holds. `partitions_maintain` (the periodic task
`kpis.tasks.maintain_partitions` and the `measurement_partitions` command) keeps
MEASUREMENT_PARTITIONS_AHEAD months ahead, gives months that landed in the DEFAULT partition
their own, and retires raw values older than the cutoff: whole months by DROP TABLE, the rest
by batched DELETE, each only once the daily rollups count every value they retire (refreshed
otherwise), so that long-range charts, which read the rollups, keep their past.

Creating and dropping partitions takes the owner of the table: the runtime role the app may
connect as (DATABASE_RUNTIME_ROLE) owns nothing. Then the task says what it could not do
(a warning in the log, the report, the admin's list of measurements) and deletes rows instead
of dropping months; the command, run as the owner, does the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from bizdevops.history import runtime_role_grant
from kpis.models import KPI, Measurement, Resolution
from kpis.rollups import DAY, HOUR, rollups_refresh_at

log = logging.getLogger(__name__)

TABLE = Measurement._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
# DDL on a partition locks the parent table: waiting behind a long query would queue every
# writer behind the DDL. Better give up and try again at the next run.
LOCK_TIMEOUT = "5s"
# Rows per DELETE when values are retired row by row (one transaction each).
DELETE_BATCH = 10_000
# One maintenance at a time (two beats, the task and the command): a session advisory lock.
_LOCK_KEY = 0x6B7069_5F7061  # "kpi_pa"
_LARGEST = sys.float_info.max


@dataclass(frozen=True)
class Partition:
    name: str
    start: dt.datetime | None  # None: unbounded (MINVALUE), or the DEFAULT partition
    end: dt.datetime | None
    is_default: bool = False


@dataclass
class Report:
    """What one maintenance did, and what it could not do (`problems`)."""

    created: list[str] = field(default_factory=list)
    moved: int = 0  # rows moved out of the DEFAULT partition into a new month's
    dropped: list[str] = field(default_factory=list)
    deleted: int = 0
    refreshed: int = 0  # KPIs whose rollups were refreshed before their raw values went
    problems: list[str] = field(default_factory=list)
    finished: bool = True  # False: the time budget ran out, the next run goes on

    def summary(self) -> str:
        parts = [
            f"created {len(self.created)} partitions",
            f"moved {self.moved} rows out of the default partition",
            f"dropped {len(self.dropped)} partitions",
            f"deleted {self.deleted} rows",
            f"refreshed the rollups of {self.refreshed} KPIs",
        ]
        if not self.finished:
            parts.append("stopped at the time budget (the next run goes on)")
        return "; ".join(parts)


def month_floor(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_after(month: dt.datetime) -> dt.datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def partition_name(month: dt.datetime) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def retention_cutoff(*, now: dt.datetime | None = None) -> dt.datetime | None:
    """The moment before which raw values are not kept (None: all are kept): UTC midnight
    MEASUREMENT_RAW_RETENTION_DAYS days ago. A whole day, so that no hourly or daily rollup
    straddles it: a rollup older than the cutoff never loses part of its values and is never
    recomputed from the raw values (writes older than the cutoff are refused)."""
    days = settings.MEASUREMENT_RAW_RETENTION_DAYS
    if days is None:
        return None
    moment = (now or timezone.now()) - dt.timedelta(days=days)
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions_list() -> list[Partition]:
    """The partitions of the measurements table, oldest first, the DEFAULT one last. Bounds
    are read back by PostgreSQL itself (the text of a bound is in the session's time zone)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, bound = 'DEFAULT',"
            " (regexp_match(bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz,"
            " (regexp_match(bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz"
            " FROM (SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass) p ORDER BY 2, 3 NULLS FIRST, 1",
            [TABLE],
        )
        rows = cursor.fetchall()
    return [Partition(name, start, end, is_default) for name, is_default, start, end in rows]


def may_manage() -> tuple[bool, str]:
    """Whether this connection's role may create and drop partitions (it owns the table, or
    is a member of its owner, and may create tables in its schema), and that role's name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, pg_has_role(current_user, c.relowner, 'USAGE')"
            " AND has_schema_privilege(c.relnamespace, 'CREATE')"
            " FROM pg_class c WHERE c.oid = %s::regclass",
            [TABLE],
        )
        role, allowed = cursor.fetchone()
    return bool(allowed), str(role)


def _months_ahead(now: dt.datetime) -> list[dt.datetime]:
    month = month_floor(now)
    months = []
    for _ in range(settings.MEASUREMENT_PARTITIONS_AHEAD + 1):
        months.append(month)
        month = month_after(month)
    return months


def _months_in_default(since: dt.datetime | None) -> list[dt.datetime]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', as_of, 'UTC') FROM {DEFAULT_PARTITION}"  # noqa: S608
            " WHERE %s::timestamptz IS NULL OR as_of >= %s",
            [since, since],
        )
        return [month_floor(moment) for (moment,) in cursor.fetchall()]


def _covered(partitions: list[Partition], start: dt.datetime, end: dt.datetime) -> bool:
    return any(
        not p.is_default and (p.start is None or p.start < end) and (p.end is None or p.end > start)
        for p in partitions
    )


def partitions_missing(*, now: dt.datetime | None = None) -> list[dt.datetime]:
    """The months that should have a partition and have none: this month and
    MEASUREMENT_PARTITIONS_AHEAD after it, and the months of values in the DEFAULT partition
    (from the retention cutoff on: older ones are about to go)."""
    now = now or timezone.now()
    partitions = partitions_list()
    if not partitions:
        return []
    cutoff = retention_cutoff(now=now)
    wanted = set(_months_ahead(now))
    if any(p.is_default for p in partitions):
        wanted.update(_months_in_default(None if cutoff is None else month_floor(cutoff)))
    return sorted(m for m in wanted if not _covered(partitions, m, month_after(m)))


@contextmanager
def _ddl() -> Iterator[None]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # PostgreSQL alters no table with deferred foreign-key checks pending (rows written
        # earlier in this transaction, or moved by it): run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        yield


def _partition_create(month: dt.datetime) -> int:
    """Create the partition of `month`; rows of that month in the DEFAULT partition move into
    it (PostgreSQL refuses the new partition while the DEFAULT one holds rows of its range:
    detach, create, move, attach again, in one transaction). Returns the rows moved."""
    start, end = month, month_after(month)
    name = partition_name(month)
    bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    moved = 0
    with _ddl(), connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [DEFAULT_PARTITION])
        has_default = cursor.fetchone()[0]
        crowded = False
        if has_default:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION}"  # noqa: S608
                " WHERE as_of >= %s AND as_of < %s)",
                [start, end],
            )
            crowded = cursor.fetchone()[0]
        if crowded:
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {DEFAULT_PARTITION}")
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}")
        if crowded:
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION}"  # noqa: S608
                " WHERE as_of >= %s AND as_of < %s RETURNING *)"
                f" INSERT INTO {TABLE} SELECT * FROM moved",
                [start, end],
            )
            moved = cursor.rowcount
            cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
        _grant()
    return moved


def _grant() -> None:
    """The runtime role gets on the new partition what it has on the table (the grant of
    `migrate`). Without DATABASE_RUNTIME_ROLE nothing: the app reads and writes through the
    parent table, whose privileges are the ones checked."""
    role = settings.DATABASE_RUNTIME_ROLE
    if role:
        runtime_role_grant(connection=connection, role=role, models_=[Measurement])


def _cannot(what: str, role: str) -> str:
    return (
        f"The database role {role} may not {what} (it does not own {TABLE}): run "
        "`manage.py measurement_partitions` as the owner of the tables (as `migrate` runs)."
    )


def partitions_create(*, now: dt.datetime | None = None, report: Report | None = None) -> Report:
    """Create the partitions `partitions_missing` names; a role that may not says so in the
    report's problems (and the values of those months wait in the DEFAULT partition)."""
    report = report or Report()
    missing = partitions_missing(now=now)
    if not missing:
        return report
    allowed, role = may_manage()
    if not allowed:
        months = ", ".join(f"{m:%Y-%m}" for m in missing)
        report.problems.append(f"No partition for {months}. " + _cannot("create them", role))
        return report
    for month in missing:
        try:
            report.moved += _partition_create(month)
        except DatabaseError as error:  # a lock not granted in time, a name taken
            report.problems.append(f"Could not create {partition_name(month)}: {error}".strip())
            break
        report.created.append(partition_name(month))
    return report


# The days of raw values whose daily rollup is missing or counts another number of finite
# values. One statement over the span (a hash aggregate per partition on PostgreSQL), then
# one index probe of the rollups per (KPI, day).
_UNROLLED_SQL = """
SELECT r.kpi_id, r.day FROM (
    SELECT kpi_id, {day} AS day, count(*) AS n FROM kpis_measurement
    WHERE as_of >= %s AND as_of < %s AND value >= %s AND value <= %s
    GROUP BY 1, 2
) r
LEFT JOIN kpis_rollup u ON u.kpi_id = r.kpi_id AND u.resolution = %s AND u.bucket = r.day
WHERE u.count IS NULL OR u.count <> r.n
ORDER BY 1, 2
"""
# The UTC day of `as_of`, as the rollups store their buckets (SQLite: "YYYY-MM-DD HH:MM:SS").
_DAY_SQL = {
    "postgresql": "date_trunc('day', as_of, 'UTC')",
    "sqlite": "substr(as_of, 1, 10) || ' 00:00:00'",
}


def _unrolled(start: dt.datetime | None, end: dt.datetime) -> dict[int, list[dt.datetime]]:
    """KPI → the UTC days of [start, end) whose finite raw values the daily rollups do not
    all count (rollups built before a write path kept them, or never built)."""
    adapt = connection.ops.adapt_datetimefield_value
    sql = _UNROLLED_SQL.format(day=_DAY_SQL[connection.vendor])
    lowest = start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(lowest), adapt(end), -_LARGEST, _LARGEST, Resolution.DAY.value])
        rows = cursor.fetchall()
    days: dict[int, list[dt.datetime]] = {}
    for kpi_id, day in rows:
        if isinstance(day, str):  # SQLite
            day = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        days.setdefault(kpi_id, []).append(day)
    return days


def _roll_up(start: dt.datetime | None, end: dt.datetime) -> int:
    """Make the rollups count every raw value of [start, end) before those values go:
    recompute the days where they do not (under the KPI's row lock, as writers hold it).
    Returns the number of KPIs refreshed."""
    unrolled = _unrolled(start, end)
    for kpi_id, days in unrolled.items():
        hours = [day + HOUR * n for day in days for n in range(int(DAY / HOUR))]
        with transaction.atomic():
            if KPI.objects.select_for_update().filter(pk=kpi_id).exists():
                rollups_refresh_at(kpi_id=kpi_id, moments=hours)
    if unrolled:
        log.warning("Refreshed the rollups of %d KPIs before retiring raw values", len(unrolled))
    return len(unrolled)


def _delete_older(cutoff: dt.datetime, report: Report, deadline: float | None) -> None:
    """Delete the raw values older than `cutoff`, DELETE_BATCH per transaction, in id order
    (each batch starts where the last one ended: no batch scans rows already deleted)."""
    older = Measurement.objects.filter(as_of__lt=cutoff).order_by("pk")
    after = 0
    while True:
        if deadline is not None and time.monotonic() > deadline:
            report.finished = False
            return
        upto = older.filter(pk__gt=after).values_list("pk", flat=True)[DELETE_BATCH - 1 :].first()
        batch = older.filter(pk__gt=after)
        if upto is not None:
            batch = batch.filter(pk__lte=upto)
        with transaction.atomic():
            deleted, _ = batch.delete()
        report.deleted += deleted
        if upto is None:
            return
        after = upto


def measurements_retire(
    *,
    now: dt.datetime | None = None,
    budget_seconds: float | None = None,
    report: Report | None = None,
) -> Report:
    """Retire the raw values older than `retention_cutoff` (nothing when it is None), their
    rollups kept and made whole first: month partitions wholly older by DROP TABLE (when this
    role may), the rest (the month straddling the cutoff, the DEFAULT partition, months the
    role may not drop, SQLite's one table) by batched DELETE. Stops between two steps once
    `budget_seconds` have passed (`report.finished` is then False)."""
    report = report or Report()
    cutoff = retention_cutoff(now=now)
    if cutoff is None:
        return report
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    old = [p for p in partitions_list() if not p.is_default and p.end and p.end <= cutoff]
    if old:
        allowed, role = may_manage()
        if not allowed:
            report.problems.append(
                f"{len(old)} month partitions hold only values older than the retention cutoff"
                f" ({cutoff:%Y-%m-%d}); their rows are deleted instead. "
                + _cannot("drop them", role)
            )
            old = []
    for partition in old:
        if deadline is not None and time.monotonic() > deadline:
            report.finished = False
            return report
        report.refreshed += _roll_up(partition.start, partition.end or cutoff)
        try:
            with _ddl(), connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {connection.ops.quote_name(partition.name)}")
        except DatabaseError as error:
            report.problems.append(f"Could not drop {partition.name}: {error}".strip())
            continue
        report.dropped.append(partition.name)
    if Measurement.objects.filter(as_of__lt=cutoff).exists():
        report.refreshed += _roll_up(None, cutoff)
        _delete_older(cutoff, report, deadline)
    return report


def partitions_maintain(
    *, now: dt.datetime | None = None, budget_seconds: float | None = None
) -> Report:
    """Create the partitions ahead, then retire what is older than the retention cutoff.
    One at a time on PostgreSQL: when another maintenance holds the lock, nothing is done."""
    report = Report()
    if connection.vendor != "postgresql":
        return measurements_retire(now=now, budget_seconds=budget_seconds, report=report)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        if not cursor.fetchone()[0]:
            report.problems.append("Another maintenance of the partitions is running.")
            report.finished = False
            return report
    try:
        partitions_create(now=now, report=report)
        measurements_retire(now=now, budget_seconds=budget_seconds, report=report)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    return report


def partitions_problems(*, now: dt.datetime | None = None) -> list[str]:
    """What an operator should know about the partitions now (for the admin): months
    without a partition this role cannot create, values waiting in the DEFAULT partition."""
    if not is_partitioned():
        return []
    problems = []
    missing = partitions_missing(now=now)
    if missing:
        allowed, role = may_manage()
        months = ", ".join(f"{m:%Y-%m}" for m in missing)
        problems.append(
            f"No measurement partition for {months}: values of those months go to the "
            "default partition. "
            + (
                "The periodic task `kpis.tasks.maintain_partitions` creates them."
                if allowed
                else _cannot("create them", role)
            )
        )
    return problems
