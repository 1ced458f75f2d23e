"""Every write to data sources, jobs and runs: registering and editing jobs, dispatching
the due ones, executing runs, the reaper, and the alert when a run fails for good."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import connection, models, transaction
from django.db.models.expressions import DatabaseDefault
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import RedisError

from bizdevops import crypto, outbox
from bizdevops.db import retry_on_lost_connection
from bizdevops.errors import ConflictError, DomainError, clean_text, reject_unknown, require_text
from initiatives.models import ENGINEER_ROLES, Initiative, Membership, Phase, Status
from initiatives.services import initiative_lock, require_open
from jobs import permissions, scheduling, sources
from jobs.models import (
    FINISHED_STATES,
    RETRIES_MAX,
    TIMEOUT_MAX_SECONDS,
    TIMEOUT_MIN_SECONDS,
    DataSource,
    DataSourceKind,
    Job,
    Run,
    RunState,
    ScheduleKind,
    SourceKind,
    Trigger,
    retry_backoff,
)
from kpis.models import KPI, Origin
from kpis.services import kpi_lock, measurement_check, measurement_write_judged
from notifications import services as notifications
from notifications.models import Alert, Event

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)

EXECUTE_RUN = "jobs.tasks.execute_run"
ALERT_KIND = "run_failed"
# Soft limit: the job's timeout plus time to record the result; the hard limit kills a task
# that ignores the soft one. The reaper resends a run whose worker died.
SOFT_MARGIN_SECONDS = 10
HARD_MARGIN_SECONDS = 30


# Data sources ------------------------------------------------------------------------------


DATABASE_SCHEMES = frozenset({"postgres", "postgresql", "sqlite"})
HTTP_SCHEMES = frozenset({"http", "https"})


def _check_data_source_url(kind: DataSourceKind, url: str, url_env: str) -> None:
    if url and url_env:
        raise DomainError("Give a URL or an environment variable, not both.", field="url")
    if url:
        allowed = DATABASE_SCHEMES if kind == DataSourceKind.DATABASE else HTTP_SCHEMES
        if urlsplit(url).scheme not in allowed:
            raise DomainError(
                f"A {kind.label.lower()} URL starts with one of: {', '.join(sorted(allowed))}.",
                field="url",
            )
    if url_env and not url_env.replace("_", "").isalnum():
        raise DomainError(
            "An environment variable name has letters, digits and _.", field="url_env"
        )


@transaction.atomic
def data_source_save(
    *,
    user: User,
    name: str,
    kind: str,
    url: str = "",
    url_env: str = "",
    allow_private_addresses: bool = False,
    description: str = "",
    source: DataSource | None = None,
) -> DataSource:
    """Create or change a data source (admins). A new URL is encrypted; an empty URL on a
    change keeps the stored one. The URL is never returned, only its redacted form."""
    permissions.can_manage_data_sources.check(user)
    name = require_text(name, "name", "A name")
    clash = DataSource.objects.filter(name__iexact=name)
    if source is not None:
        clash = clash.exclude(pk=source.pk)
    if clash.exists():
        raise DomainError(f"A data source named {name!r} exists already.", field="name")
    try:
        data_kind = DataSourceKind(kind)
    except ValueError:
        raise DomainError("The kind is 'database' or 'http'.", field="kind") from None
    url, url_env = (url or "").strip(), (url_env or "").strip()
    _check_data_source_url(data_kind, url, url_env)
    source = source or DataSource(name=name, kind=data_kind)
    if not (url or url_env or source.url_encrypted or source.url_env):
        raise DomainError("Give the URL or the environment variable that holds it.", field="url")
    source.name, source.kind = name, data_kind
    source.allow_private_addresses = allow_private_addresses
    source.description = clean_text(description, "description", "The description", multiline=True)
    if url:
        source.url_encrypted, source.url_env = crypto.encrypt(url), ""
        source.display_url = crypto.redact(url)
    elif url_env:
        source.url_env, source.url_encrypted, source.display_url = url_env, "", f"${url_env}"
    if data_kind == DataSourceKind.DATABASE:
        _check_database_role(url or (crypto.from_env(url_env) or "" if url_env else ""), url_env)
    source.save()
    return source


ROLE_CHECK_TIMEOUT_SECONDS = 5


def _check_database_role(url: str, url_env: str) -> None:
    """Refuse a PostgreSQL role that may do more than read (sources.check_database_role).

    Checked when a URL is given, or an environment variable that is set in this process. A
    server that cannot be reached now, or a URL only the workers' environment holds, does not
    stop the save: the same check runs before every run and refuses the run instead.
    """
    if not url:
        return
    try:
        sources.check_database_role(url, timeout=ROLE_CHECK_TIMEOUT_SECONDS)
    except sources.TransientSourceError:
        log.info("Data source not reachable at save; its role is checked at every run.")
    except sources.SourceError as error:
        raise DomainError(str(error), field="url_env" if url_env else "url") from None


# Jobs ----------------------------------------------------------------------------------------

JOB_FIELDS = (
    "schedule_kind",
    "cron",
    "interval_seconds",
    "source_kind",
    "data_source",
    "sql",
    "http_path",
    "json_path",
    "calculation",
    "timeout_seconds",
    "max_retries",
    "enabled",
)


def _check_limits(values: dict[str, Any]) -> None:
    timeout, retries = values.get("timeout_seconds", 30), values.get("max_retries", 2)
    if not TIMEOUT_MIN_SECONDS <= timeout <= TIMEOUT_MAX_SECONDS:
        raise DomainError(
            f"The timeout is {TIMEOUT_MIN_SECONDS} to {TIMEOUT_MAX_SECONDS} seconds.",
            field="timeout_seconds",
        )
    if not 0 <= retries <= RETRIES_MAX:
        raise DomainError(f"Retries are 0 to {RETRIES_MAX}.", field="max_retries")


def _check_source(kind: SourceKind, values: dict[str, Any]) -> None:
    """The source fields of the kind, normalised; the others emptied."""
    if kind == SourceKind.PYTHON:
        if values.get("calculation") not in sources.CALCULATIONS:
            raise DomainError("Pick one of the registered calculations.", field="calculation")
        values.update(data_source=None, sql="", http_path="", json_path="")
        return
    wanted = DataSourceKind.DATABASE if kind == SourceKind.SQL else DataSourceKind.HTTP
    source = values.get("data_source")
    if source is None or source.kind != wanted:
        raise DomainError(
            f"A {kind.label} needs a {wanted.label.lower()} data source.", field="data_source"
        )
    try:
        if kind == SourceKind.SQL:
            values["sql"] = sources.check_select(values.get("sql") or "")
            values.update(http_path="", json_path="", calculation="")
            return
        json_path = (values.get("json_path") or "").strip()
        if not json_path:
            raise DomainError("A JSON path is required.", field="json_path", code="required")
        sources.check_json_path(json_path)
        values.update(sql="", calculation="", json_path=json_path)
    except sources.SourceError as error:
        field = "sql" if kind == SourceKind.SQL else "json_path"
        raise DomainError(str(error), field=field) from None


JOB_TEXTS = {"cron": "The cron expression", "http_path": "The path", "json_path": "The JSON path"}


def _check_job(values: dict[str, Any]) -> None:
    for field, label in JOB_TEXTS.items():
        if field in values:
            values[field] = clean_text(values[field], field, label)
    if "sql" in values:
        values["sql"] = clean_text(values["sql"], "sql", "The query", multiline=True)
    scheduling.check_schedule(
        values["schedule_kind"], values.get("cron", ""), values.get("interval_seconds")
    )
    if values["schedule_kind"] == ScheduleKind.CRON:
        values["cron"], values["interval_seconds"] = " ".join(values["cron"].split()), None
    else:
        values["cron"] = ""
    _check_limits(values)
    try:
        kind = SourceKind(values.get("source_kind") or "")
    except ValueError:
        raise DomainError("The source is sql, http or python.", field="source_kind") from None
    _check_source(kind, values)


@transaction.atomic
def job_register(*, kpi: KPI, user: User, **values: Any) -> Job:
    """Register the recalculation job of a KPI (one per KPI)."""
    reject_unknown(values, JOB_FIELDS)
    initiative = initiative_lock(kpi.initiative)
    permissions.can_register_job.check(user, initiative)
    require_open(initiative)
    if Job.objects.filter(kpi=kpi).exists():
        raise ConflictError(f"The KPI {kpi.name!r} has a job already; edit it.", field="kpi")
    _check_job(values)
    job = Job(kpi=kpi, created_by=user, **values)
    job.next_run_at = scheduling.next_after(
        job.schedule_kind, job.cron, job.interval_seconds, timezone.now()
    )
    job.save()
    return job


@transaction.atomic
def job_update(*, job: Job, user: User, **changes: Any) -> Job:
    reject_unknown(changes, JOB_FIELDS)
    initiative = initiative_lock(job.kpi.initiative)
    job = Job.objects.select_for_update(of=("self",)).select_related("kpi").get(pk=job.pk)
    permissions.can_operate.check(user, initiative)
    require_open(initiative)
    values = {field: getattr(job, field) for field in JOB_FIELDS} | changes
    _check_job(values)
    schedule_changed = any(
        values[f] != getattr(job, f) for f in ("schedule_kind", "cron", "interval_seconds")
    )
    for field in JOB_FIELDS:
        setattr(job, field, values[field])
    if schedule_changed or (job.enabled and job.next_run_at is None):
        # Editing a schedule is a one-row update: the dispatcher reads next_run_at.
        job.next_run_at = scheduling.next_after(
            job.schedule_kind, job.cron, job.interval_seconds, timezone.now()
        )
    job.save()
    return job


# Testing a job's source ----------------------------------------------------------------------

SOURCE_FIELDS = (
    "source_kind",
    "data_source",
    "sql",
    "http_path",
    "json_path",
    "calculation",
    "timeout_seconds",
)
# A test runs in the web request: it waits at most this long (a trial run, in a worker, has
# the job's own timeout), and each engineer starts at most TESTS_PER_MINUTE.
TEST_TIMEOUT_MAX_SECONDS = 10
TESTS_PER_MINUTE = 20


@dataclass(frozen=True)
class SourceTest:
    """What a test of a job's source gave: the number, or why there is none; and a unit
    mismatch with the KPI, when the source declares its unit."""

    value: float | None = None
    error: str = ""
    unit_warning: str = ""
    timeout: float = 0

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def shown(self) -> str:
        """The number as the source gave it (up to 12 significant digits, no padding)."""
        return "" if self.value is None else format(self.value, ".12g")


def _count_test(user: User) -> None:
    key = f"jobs:source-test:{user.pk}:{int(time.time() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except (RedisError, ValueError) as error:  # a cache outage must not stop the test
        log.warning("Source test not counted: %s", error)
        return
    if count > TESTS_PER_MINUTE:
        raise DomainError(
            f"At most {TESTS_PER_MINUTE} tests a minute: wait a moment and test again.",
            code="throttled",
        )


def job_test(*, kpi: KPI, user: User, **values: Any) -> SourceTest:
    """Run a job's source once for the KPI as a run would (`sources.evaluate`: for SQL the
    read-only transaction, the statement timeout, the role check, one number; then the
    bounds of a measurement) and write nothing: no job, no run, no measurement.

    Refused (PermissionDenied) unless the user may register or edit the KPI's job; a
    DomainError for input the job form would refuse. What the source answers, a number or an
    error, is the result. Not atomic: no transaction is held while the source works."""
    reject_unknown(values, SOURCE_FIELDS)
    permissions.can_operate.check(user, kpi.initiative)
    try:
        kind = SourceKind(values.get("source_kind") or "")
    except ValueError:
        raise DomainError("The source is sql, http or python.", field="source_kind") from None
    values = dict(values)
    if "sql" in values:
        values["sql"] = clean_text(values["sql"], "sql", "The query", multiline=True)
    for field in ("http_path", "json_path"):
        values[field] = clean_text(values.get(field), field, JOB_TEXTS[field])
    _check_source(kind, values)
    _count_test(user)
    timeout = min(int(values.get("timeout_seconds") or 30), TEST_TIMEOUT_MAX_SECONDS)
    job = Job(
        kpi=kpi,
        source_kind=kind,
        data_source=values.get("data_source"),
        sql=values.get("sql") or "",
        http_path=values.get("http_path") or "",
        json_path=values.get("json_path") or "",
        calculation=values.get("calculation") or "",
        timeout_seconds=max(TIMEOUT_MIN_SECONDS, timeout),
    )
    warning = sources.unit_mismatch(job, kpi.unit)
    try:
        value = sources.evaluate(job)
    except sources.SourceError as error:
        return SourceTest(error=str(error), unit_warning=warning, timeout=timeout)
    except Exception as error:
        # A bug in a calculation: what a run records, and logged with its traceback.
        log.exception("Testing the source of KPI %s failed unexpectedly", kpi.pk)
        message = f"Unexpected error: {type(error).__name__}: {error}"
        return SourceTest(error=message, unit_warning=warning, timeout=timeout)
    try:
        measurement_check(as_of=timezone.now(), value=value)
    except DomainError as error:
        message = f"The result was refused: {error.message}"
        return SourceTest(error=message, unit_warning=warning, timeout=timeout)
    return SourceTest(value=value, unit_warning=warning, timeout=timeout)


# Runs ----------------------------------------------------------------------------------------


def _enqueue(run: Run) -> None:
    """Hand the run to the workers (a delivery: dispatch, run now, the reaper) through the
    outbox, in the transaction that created or resent it."""
    Run.objects.filter(pk=run.pk).update(
        enqueued_at=timezone.now(), deliveries=models.F("deliveries") + 1
    )
    _send(run)


def _send(run: Run, delay: int = 0) -> None:
    """The run's message, with the time limits of its job; after `delay` seconds (a retry)."""
    timeout = run.job.timeout_seconds
    outbox.enqueue(
        EXECUTE_RUN,
        run.pk,
        delay=delay,
        soft_time_limit=timeout + SOFT_MARGIN_SECONDS,
        time_limit=timeout + HARD_MARGIN_SECONDS,
    )


def _runnable(initiative: Initiative, trigger: str) -> str | None:
    """Why a run of this initiative must not execute now, or None."""
    if trigger == Trigger.SCHEDULE or trigger == Trigger.MANUAL:
        if initiative.phase != Phase.OPS or initiative.status != Status.ACTIVE:
            return (
                f"{initiative.key} is not active in Ops ({initiative.phase}, {initiative.status})."
            )
    elif initiative.status != Status.ACTIVE or initiative.phase == Phase.BIZ:
        return f"{initiative.key} is not active in Dev or Ops."
    return None


@transaction.atomic
def run_request(*, job: Job, user: User, trigger: str = Trigger.MANUAL) -> Run:
    """Start a run by hand: 'run now' (Ops) or the trial run the Dev → Ops gate needs."""
    if trigger not in (Trigger.MANUAL, Trigger.TRIAL):
        raise DomainError("A run by hand is 'manual' or 'trial'.", field="trigger")
    initiative = initiative_lock(job.kpi.initiative)
    job = Job.objects.select_for_update(of=("self",)).select_related("kpi").get(pk=job.pk)
    permissions.can_run.check(user, initiative)
    refusal = _runnable(initiative, trigger)
    if refusal:
        raise ConflictError(refusal, code="not_runnable")
    if not job.enabled and trigger == Trigger.MANUAL:
        raise ConflictError("The job is disabled; enable it first.", code="disabled")
    run = Run.objects.create(
        job=job, scheduled_for=timezone.now(), trigger=trigger, requested_by=user
    )
    _enqueue(run)
    return run


class _Due(NamedTuple):
    """What the dispatcher reads of a due job."""

    pk: int
    schedule_kind: str
    cron: str
    interval_seconds: int | None
    next_run_at: dt.datetime
    timeout_seconds: int


def dispatch_due(
    *, now: dt.datetime | None = None, batch: int | None = None, budget: float | None = None
) -> list[int]:
    """Create one run per due job of an active initiative in Ops and advance the job; the
    ids of the new runs.

    Batches of `batch` jobs (KPI_DISPATCH_BATCH), each its own transaction whose messages
    are sent as it commits, so the workers start on the first while the next is claimed;
    until nothing is due or `budget` seconds (KPI_DISPATCH_BUDGET_SECONDS, checked between
    batches) are spent. What is left is the next tick's: the beat interval bounds the wait.

    Jobs are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), so two dispatchers never take
    the same job. Runs are inserted with ON CONFLICT (job, scheduled_for) DO NOTHING: a run
    that exists for the moment already is neither duplicated nor an error, and the job still
    advances. A job that missed many fire times (beat was down) gets one catch-up run, then
    its next run moves past now. A batch is four queries whatever its size (claim, insert
    runs, update jobs, insert outbox rows; SQLite splits big inserts at its parameter limit),
    and its relay two more (lock the outbox rows, delete the sent ones): at 6 queries per
    job, a tick of 500 took 4 to 12 s on a loaded machine, and control messages queued
    behind the ticks expired.
    """
    now = now or timezone.now()
    size = batch or settings.KPI_DISPATCH_BATCH
    budget = settings.KPI_DISPATCH_BUDGET_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    created: list[int] = []
    while True:
        claimed, runs = _dispatch_batch(now=now, size=size)
        created += runs
        # Fewer than asked: nothing else is due, or another dispatcher holds the rest.
        if claimed < size or time.monotonic() >= deadline:
            return created


@transaction.atomic
def _dispatch_batch(*, now: dt.datetime, size: int) -> tuple[int, list[int]]:
    """One batch: how many jobs it claimed, and the runs it created."""
    due = [
        _Due(*row)
        for row in Job.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            enabled=True,
            next_run_at__lte=now,
            kpi__initiative__phase=Phase.OPS,
            kpi__initiative__status=Status.ACTIVE,
        )
        .order_by("next_run_at")
        .values_list(*_Due._fields)[:size]
    ]
    if not due:
        return 0, []
    moments = {job.pk: _moments(job, now) for job in due}
    created = _runs_insert([(pk, first) for pk, (first, _) in moments.items()], now=now)
    _jobs_advance([(pk, upcoming) for pk, (_, upcoming) in moments.items()])
    timeouts = {job.pk: job.timeout_seconds for job in due}
    _send_many([(run_id, timeouts[job_id]) for run_id, job_id in created])
    return len(due), [run_id for run_id, _ in created]


def _moments(job: _Due, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The moment a due job runs for (the latest missed one) and its next run after now."""
    scheduled_for = scheduling.latest_due(
        job.schedule_kind, job.cron, job.interval_seconds, job.next_run_at, now
    )
    upcoming = scheduling.next_after(
        job.schedule_kind, job.cron, job.interval_seconds, scheduled_for
    )
    if upcoming <= now:
        upcoming = scheduling.next_after(job.schedule_kind, job.cron, job.interval_seconds, now)
    return scheduled_for, upcoming


def _runs_insert(
    moments: list[tuple[int, dt.datetime]], *, now: dt.datetime
) -> list[tuple[int, int]]:
    """One INSERT of the scheduled runs of these (job, moment) pairs, ON CONFLICT DO NOTHING
    on the one-run-per-moment constraint; the (run, job) ids of the runs it created, in
    order. The other columns get the values a `Run(...)` would save."""
    quote = connection.ops.quote_name
    template = Run(trigger=Trigger.SCHEDULE, enqueued_at=now, deliveries=1)
    fixed, values, columns = [], [], [quote("job_id"), quote("scheduled_for")]
    for field in Run._meta.concrete_fields:
        if field.primary_key or field.attname in ("job_id", "scheduled_for"):
            continue
        value = field.pre_save(template, add=True)
        if isinstance(value, DatabaseDefault):
            continue
        fixed.append(field)
        values.append(field.get_db_prep_save(value, connection))
        columns.append(quote(str(field.column)))
    head = (
        f"INSERT INTO {quote(Run._meta.db_table)} ({', '.join(columns)})"
        " SELECT v.job_id, v.scheduled_for"
    )
    tail = (
        f"ON CONFLICT ({quote('job_id')}, {quote('scheduled_for')}) DO NOTHING"
        f" RETURNING {quote('id')}, {quote('job_id')}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    created: list[tuple[int, int]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            constants = "".join(f", CAST(%s AS {f.cast_db_type(connection)})" for f in fixed)
            cursor.execute(
                f"{head}{constants} FROM unnest(%s::bigint[], %s::timestamptz[])"
                f" AS v(job_id, scheduled_for) {tail}",
                [*values, [pk for pk, _ in moments], [adapt(m) for _, m in moments]],
            )
            created += cursor.fetchall()
        else:
            # SQLite names the columns of VALUES column1, column2; an INSERT ... SELECT
            # needs a WHERE before ON CONFLICT to parse.
            head = head.replace("v.job_id, v.scheduled_for", "v.column1, v.column2")
            constants = ", %s" * len(fixed)
            for chunk in _chunks(moments, reserved=len(values), per_row=2):
                rows = ", ".join(["(%s, %s)"] * len(chunk))
                cursor.execute(
                    f"{head}{constants} FROM (VALUES {rows}) AS v WHERE true {tail}",
                    [*values, *(p for pk, m in chunk for p in (pk, adapt(m)))],
                )
                created += cursor.fetchall()
    return sorted(created)


def _jobs_advance(moments: list[tuple[int, dt.datetime]]) -> None:
    """One UPDATE that sets each job's next run time (not `bulk_update`'s CASE per row)."""
    quote = connection.ops.quote_name
    table, column = quote(Job._meta.db_table), quote("next_run_at")
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = v.next"  # noqa: S608  (model names)
                " FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, next)"
                f" WHERE {table}.{quote('id')} = v.id",
                [[pk for pk, _ in moments], [adapt(m) for _, m in moments]],
            )
            return
        for chunk in _chunks(moments, reserved=0, per_row=2):
            rows = ", ".join(["(%s, %s)"] * len(chunk))
            cursor.execute(
                f"UPDATE {table} SET {column} = v.column2 FROM (VALUES {rows}) AS v"  # noqa: S608
                f" WHERE {table}.{quote('id')} = v.column1",
                [p for pk, m in chunk for p in (pk, adapt(m))],
            )


def _chunks(
    rows: list[tuple[int, dt.datetime]], *, reserved: int, per_row: int
) -> list[list[tuple[int, dt.datetime]]]:
    """`rows` split to stay under the database's limit of parameters per query (SQLite)."""
    limit = connection.features.max_query_params
    size = max((limit - reserved) // per_row, 1) if limit else len(rows)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _send_many(limits: list[tuple[int, int]]) -> None:
    """The messages of new runs, `(run id, its job's timeout)` each, in one outbox INSERT."""
    outbox.enqueue_many(
        EXECUTE_RUN,
        [
            (
                (pk,),
                {
                    "soft_time_limit": timeout + SOFT_MARGIN_SECONDS,
                    "time_limit": timeout + HARD_MARGIN_SECONDS,
                },
            )
            for pk, timeout in limits
        ],
    )


@dataclass(frozen=True)
class Outcome:
    state: str
    retry_in: int | None = None


# Which runs may start: the rule of `_runnable` (and, for schedules, an enabled job) in SQL,
# for the one-statement claim. A run it does not claim takes the checked path, which asks
# `_runnable` itself and records the skip: the SQL may refuse more, never less.
_CLAIM_SQL = """
UPDATE {run} AS r
SET state = %(running)s, attempt = r.attempt + 1, started_at = %(now)s,
    worker = %(worker)s, finished_at = NULL, error = ''
FROM {job} AS j
JOIN {kpi} AS k ON k.id = j.kpi_id
JOIN {initiative} AS i ON i.id = k.initiative_id
LEFT JOIN {source} AS d ON d.id = j.data_source_id
WHERE r.id = %(id)s AND j.id = r.job_id AND r.state IN (%(queued)s, %(running)s)
  AND i.status = %(active)s
  AND CASE WHEN r.trigger IN (%(schedule)s, %(manual)s)
           THEN i.phase = %(ops)s AND (r.trigger <> %(schedule)s OR j.enabled)
           ELSE i.phase <> %(biz)s END
RETURNING {columns}
"""
_CLAIMED = (
    ("run", Run, "r"),
    ("job", Job, "j"),
    ("kpi", KPI, "k"),
    ("initiative", Initiative, "i"),
    ("source", DataSource, "d"),
)


@functools.cache
def _claim_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(
        f"{alias}.{quote(str(field.column))}"
        for _, model, alias in _CLAIMED
        for field in model._meta.concrete_fields
    )
    tables = {name: quote(model._meta.db_table) for name, model, _ in _CLAIMED}
    return _CLAIM_SQL.format(columns=columns, **tables)


# The claim need not wait for its commit to reach the disk (a flush per run, 5 to 13 ms on
# the development machine): if the server crashes before it does, the claim is undone, and
# the run's result write, whose own commit is durable and flushes the claim with it, finds the
# run queued instead of running and records it all the same (or the reaper resends the run).
# Visibility and locking are those of any commit.
_CLAIM_ASYNC = "SET LOCAL synchronous_commit = off; "


def _run_claim(run_id: int, worker: str) -> Run | None:
    """PostgreSQL: start a runnable, unfinished run in one statement (a transaction by
    itself; only the run row is locked) that returns the run with its job, KPI, initiative
    and data source. None when the statement did not start it."""
    # In a caller's transaction SET LOCAL would reach that transaction's commit too.
    prefix = "" if connection.in_atomic_block else _CLAIM_ASYNC
    with connection.cursor() as cursor:
        cursor.execute(
            prefix + _claim_sql(),
            {
                "id": run_id,
                "now": timezone.now(),
                "worker": worker[:200],
                "queued": RunState.QUEUED,
                "running": RunState.RUNNING,
                "active": Status.ACTIVE,
                "schedule": Trigger.SCHEDULE,
                "manual": Trigger.MANUAL,
                "ops": Phase.OPS,
                "biz": Phase.BIZ,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    run, job, kpi = _instance(Run, values), _instance(Job, values), _instance(KPI, values)
    initiative, source = _instance(Initiative, values), _instance(DataSource, values)
    kpi.initiative = initiative
    job.kpi = kpi
    job.data_source = source if job.data_source_id is not None else None
    run.job = job
    return run


def _instance(model: type[M], values: Iterator[Any]) -> M:
    names = _attnames(model)
    return model.from_db(connection.alias, names, [next(values) for _ in names])


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def run_start(*, run_id: int, worker: str) -> Run | None:
    """Claim a run for execution. None when there is nothing to do: the run is finished
    already (a redelivered message) or was skipped because its initiative left Ops (or its
    job was disabled). On PostgreSQL a run that may start is claimed in one statement."""
    if connection.vendor == "postgresql":
        claimed = _run_claim(run_id, worker)
        if claimed is not None:
            return claimed
    return _run_start_checked(run_id=run_id, worker=worker)


@transaction.atomic
def _run_start_checked(*, run_id: int, worker: str) -> Run | None:
    # Only the run row is locked (the initiative and job are read): taking their locks here,
    # in the opposite order to run_request, deadlocked with a concurrent "run now".
    run = (
        Run.objects.select_for_update(of=("self",))
        .select_related("job__kpi__initiative", "job__data_source")
        .get(pk=run_id)
    )
    if run.is_finished:
        return None
    refusal = _runnable(run.job.kpi.initiative, run.trigger)
    if refusal is None and run.trigger == Trigger.SCHEDULE and not run.job.enabled:
        refusal = "The job was disabled."
    now = timezone.now()
    if refusal:
        run.state, run.error, run.finished_at = RunState.SKIPPED, refusal, now
        run.save(update_fields=["state", "error", "finished_at"])
        return None
    run.state, run.started_at, run.worker = RunState.RUNNING, now, worker[:200]
    run.attempt += 1
    run.finished_at, run.error = None, ""
    run.save(update_fields=["state", "started_at", "worker", "attempt", "finished_at", "error"])
    return run


def run_succeed(*, run: Run, value: float) -> bool:
    """Record the value and the run's success in one transaction. Trial runs only test the
    job; they write no measurement, but their value must be one that could be recorded. A
    value out of the measurement bounds raises DomainError and nothing is written. False
    when the run was finished already (another delivery of it): nothing is written then.

    The status of the KPI is judged in Python from the thresholds of the locked KPI row and
    the KPI's latest value. On PostgreSQL two statements (BEGIN and COMMIT aside), whether
    the status changes or not: one locks the KPI and finishes the run, returning the KPI's
    row; one round trip upserts the value, refreshes the rollups, sets the status when it
    changes and reads the latest value (kpis.services.measurement_write_judged). An alert
    the change calls for adds its own."""
    measurement_check(as_of=run.scheduled_for, value=value)
    done = {"state": RunState.SUCCEEDED, "value": value, "finished_at": timezone.now()}

    def finish() -> bool:
        unfinished = Run.objects.filter(pk=run.pk).exclude(state__in=FINISHED_STATES)
        return unfinished.update(**done, error="") == 1

    if run.trigger == Trigger.TRIAL:
        return finish()  # one statement: atomic by itself
    with transaction.atomic():
        # Lock order everywhere: initiative, then job or KPI, then run.
        if connection.vendor == "postgresql":
            kpi = _run_finish(run, done)
            if kpi is None:
                return False
        else:
            kpi = kpi_lock(kpi_id=run.job.kpi_id)
            if not finish():
                return False
        measurement_write_judged(
            kpi=kpi, as_of=run.scheduled_for, value=value, origin=Origin.RUN, run_id=run.pk
        )
    return True


# Lock the KPI, then finish the run if it is not finished, in one statement that returns the
# KPI's row as locked (no row: the run was finished already). The run's row is locked by the
# UPDATE only once the join has given it a row, and the join needs the CTE's row, locked by
# FOR UPDATE: the KPI is locked first whatever the plan. The KPI's row is its latest version
# (FOR UPDATE waits for another writer and takes what it committed); the statements after
# this one have snapshots taken after the lock, so they miss no value that writer committed.
_FINISH_SQL = """
WITH k AS MATERIALIZED (SELECT {kpi_columns} FROM {kpi} WHERE id = %(kpi)s FOR UPDATE)
UPDATE {run} AS r SET state = %(state)s, value = %(value)s, finished_at = %(finished_at)s,
    error = ''
FROM k
WHERE r.id = %(run_id)s AND r.state NOT IN %(finished)s
RETURNING {returned}
"""


@functools.cache
def _finish_sql() -> str:
    quote = connection.ops.quote_name
    fields = KPI._meta.concrete_fields
    return _FINISH_SQL.format(
        kpi=quote(KPI._meta.db_table),
        run=quote(Run._meta.db_table),
        kpi_columns=", ".join(quote(str(field.column)) for field in fields),
        returned=", ".join(f"k.{quote(str(field.column))}" for field in fields),
    )


def _run_finish(run: Run, done: dict[str, Any]) -> KPI | None:
    with connection.cursor() as cursor:
        cursor.execute(
            _finish_sql(),
            {
                **done,
                "kpi": run.job.kpi_id,
                "run_id": run.pk,
                "finished": tuple(sorted(FINISHED_STATES)),
            },
        )
        row = cursor.fetchone()
    return None if row is None else _instance(KPI, iter(row))


@transaction.atomic
def run_fail(*, run: Run, error: str, retry: bool) -> Outcome:
    """A failed attempt: back to queued when a retry is due, else failed for good."""
    locked = Run.objects.select_for_update(of=("self",)).select_related("job").get(pk=run.pk)
    if locked.is_finished:
        return Outcome(locked.state)
    now = timezone.now()
    if retry and locked.attempt <= locked.job.max_retries:
        delay = retry_backoff(locked.attempt)
        locked.state, locked.error = RunState.QUEUED, f"Attempt {locked.attempt} failed: {error}"
        locked.enqueued_at = now + dt.timedelta(seconds=delay)
        locked.save(update_fields=["state", "error", "enqueued_at"])
        _send(locked, delay=delay)
        log.info("Run %s: attempt %d failed; retry in %ds", locked.pk, locked.attempt, delay)
        return Outcome(RunState.QUEUED, retry_in=delay)
    locked.state, locked.error, locked.finished_at = RunState.FAILED, error[:5000], now
    locked.save(update_fields=["state", "error", "finished_at"])
    if locked.trigger != Trigger.TRIAL:
        _alert_failed(locked)
    return Outcome(RunState.FAILED)


def _alert_failed(run: Run) -> Alert:
    """A run failed after its last retry: alert the job's engineers (the team's data and
    devops engineers, and whoever registered the job) and send `run.failed`."""
    job = Job.objects.select_related("kpi__initiative").get(pk=run.job_id)
    initiative = job.kpi.initiative
    engineers = set(
        Membership.objects.filter(
            initiative=initiative, left_at__isnull=True, role__in=ENGINEER_ROLES
        ).values_list("user_id", flat=True)
    )
    return notifications.alert_record(
        kind=ALERT_KIND,
        subject=initiative.key,
        url=reverse("initiative-kpis", kwargs={"key": initiative.key}),
        detail_label="job",
        detail_url=reverse("job-detail", kwargs={"job_id": job.pk}),
        object_type="run",
        object_id=run.pk,
        to_status="failed",
        message=f"{initiative.key} {job.kpi.name}: run {run.pk} failed: {run.error[:300]}",
        recipients=engineers | {job.created_by_id},
        event=Event.RUN_FAILED,
        payload={
            "initiative": initiative.key,
            "kpi": {"id": job.kpi.pk, "name": job.kpi.name},
            "job": job.pk,
            "run": run.pk,
            "attempt": run.attempt,
            "error": run.error,
        },
    )


@transaction.atomic
def runs_release(*, worker: str, now: dt.datetime | None = None) -> list[int]:
    """Put back to queued the runs `worker` still has running as it shuts down: a cold
    shutdown stopped them (past CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT), or their pool process
    died during a warm one. Their messages are back in the broker (restored as the worker
    closes, or requeued by reject_on_worker_lost), so the next worker claims them. The
    attempt stays counted; enqueued_at restarts the reaper's clock. Runs another worker has
    claimed meanwhile are not this worker's any more and are left alone."""
    if not worker:
        return []
    now = now or timezone.now()
    released: list[int] = []
    running = Run.objects.select_for_update(of=("self",)).filter(
        state=RunState.RUNNING, worker=worker[:200]
    )
    for run in running:
        run.state, run.enqueued_at = RunState.QUEUED, now
        run.error = f"Attempt {run.attempt} stopped: the worker {worker} shut down."
        run.save(update_fields=["state", "enqueued_at", "error"])
        released.append(run.pk)
    return released


def run_time_out(*, run_id: int) -> Outcome:
    """The worker stopped a run at its soft time limit: it fails for good."""
    run = Run.objects.select_related("job").get(pk=run_id)
    return run_fail(run=run, error="The run exceeded its time limit.", retry=False)


def run_execute(*, run_id: int, worker: str = "") -> Outcome:
    """Execute one run: claim it, compute the number outside any transaction, record it.

    Losing the app's database connection is transient where it happens: the claim and the
    recording are each done again on a new connection (the computed value is kept), so the
    run finishes normally instead of waiting for the reaper."""
    run = retry_on_lost_connection(
        lambda: run_start(run_id=run_id, worker=worker), what=f"the start of run {run_id}"
    )
    if run is None:
        return Outcome(Run.objects.values_list("state", flat=True).get(pk=run_id))
    try:
        value = sources.evaluate(run.job)
    except sources.TransientSourceError as error:
        return _record_failure(run, str(error), retry=True)
    except sources.SourceError as error:
        return _record_failure(run, str(error), retry=False)
    except SoftTimeLimitExceeded:
        raise  # the task records the time limit
    except Exception as error:
        # A bug in a calculation (not a named transient error): fail the run, no retry,
        # and log it with its traceback rather than leave the run 'running'.
        log.exception("Run %s failed unexpectedly", run.pk)
        message = f"Unexpected error: {type(error).__name__}: {error}"
        return _record_failure(run, message, retry=False)
    try:
        recorded = retry_on_lost_connection(
            lambda: run_succeed(run=run, value=value), what=f"the result of run {run.pk}"
        )
    except DomainError as error:
        # Out of the measurement bounds: the same answer next time, so no retry.
        return _record_failure(run, f"The result was refused: {error.message}", retry=False)
    if not recorded:  # another delivery of the run finished it meanwhile
        return Outcome(Run.objects.values_list("state", flat=True).get(pk=run.pk))
    return Outcome(RunState.SUCCEEDED)


def _record_failure(run: Run, error: str, *, retry: bool) -> Outcome:
    return retry_on_lost_connection(
        lambda: run_fail(run=run, error=error, retry=retry), what=f"the failure of run {run.pk}"
    )


TAKEN = (RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED)


def _newest_taken(limit: dt.datetime) -> dt.datetime | None:
    """The latest enqueue time of a run a worker has taken (one index lookup per state)."""
    newest = [
        Run.objects.filter(state=state, enqueued_at__isnull=False, enqueued_at__gt=limit)
        .order_by("-enqueued_at")
        .values_list("enqueued_at", flat=True)
        .first()
        for state in TAKEN
    ]
    return max((moment for moment in newest if moment is not None), default=None)


def runs_reap(*, now: dt.datetime | None = None, waiting: int | None = 0) -> list[int]:
    """Send again runs whose message was lost: queued or running well past their time limit.
    Bounded by KPI_RUN_MAX_DELIVERIES; after that the run fails.

    A queued run is not lost while its message is still in the outbox, nor while it waits
    behind a backlog: `waiting` is the number of messages in the broker's `runs` queue (None:
    unknown), and a queued run counts as lost only when that queue is empty or when the
    workers have taken a run enqueued more than the grace period after it (the queue is
    first in, first out). Without this, every run of a backlog that takes longer than the
    grace period to drain (10,000 due runs take minutes) would be sent again."""
    now = now or timezone.now()
    grace = dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS)
    resent: list[int] = []
    with transaction.atomic():
        stuck = list(
            Run.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("job")
            .filter(state__in=[RunState.QUEUED, RunState.RUNNING], enqueued_at__lt=now - grace)
        )
        if not stuck:
            return resent
        in_outbox = outbox.pending_args(EXECUTE_RUN)
        oldest = min(run.enqueued_at for run in stuck if run.enqueued_at is not None)
        newest_taken = _newest_taken(oldest) if waiting != 0 else None
        for run in stuck:
            limit = dt.timedelta(seconds=run.job.timeout_seconds) + grace
            since = run.started_at if run.state == RunState.RUNNING else run.enqueued_at
            if since is None or since > now - limit:
                continue
            if run.state == RunState.QUEUED and (
                run.pk in in_outbox
                or (waiting != 0 and not (newest_taken and newest_taken > since + grace))
            ):
                continue
            if run.deliveries >= settings.KPI_RUN_MAX_DELIVERIES:
                run.state, run.finished_at = RunState.FAILED, now
                run.error = f"Lost: sent {run.deliveries} times without finishing."
                run.save(update_fields=["state", "finished_at", "error"])
                continue
            _enqueue(run)
            resent.append(run.pk)
    return resent
