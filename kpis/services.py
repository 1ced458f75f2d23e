"""Every write to KPIs, measurements, data sources, jobs and runs."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from initiatives import permissions
from initiatives.models import Initiative, Phase, Status, TeamRole
from initiatives.roles import is_admin
from initiatives.services import initiative_lock
from kpis import scheduling, sources
from kpis.models import (
    KPI,
    DataSource,
    DataSourceKind,
    Direction,
    Job,
    Measurement,
    Origin,
    Run,
    RunState,
    ScheduleKind,
    SourceKind,
    Trigger,
)
from kpis.secrets import encrypt, redact
from notifications import services as notifications

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

log = logging.getLogger(__name__)

KPI_FIELDS = (
    "name",
    "unit",
    "description",
    "direction",
    "target",
    "warning_threshold",
    "critical_threshold",
)


def can_define_kpi(user: User | AnonymousUser, initiative: Initiative) -> bool:
    engineers = {TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER}
    return permissions.can_manage(user, initiative) or bool(
        permissions.active_roles_on(user, initiative) & engineers
    )


def _validate(values: dict[str, Any]) -> None:
    name = (values.get("name") or "").strip()
    if not name:
        raise DomainError("A KPI needs a name.", field="name", code="required")
    values["name"] = name
    for text in ("unit", "description"):
        values[text] = (values.get(text) or "").strip()
    try:
        direction = Direction(values.get("direction") or Direction.HIGHER)
    except ValueError:
        raise DomainError("Direction is 'higher' or 'lower'.", field="direction") from None
    values["direction"] = direction
    target, warning, critical = (
        values.get("target"),
        values.get("warning_threshold"),
        values.get("critical_threshold"),
    )
    # Thresholds sit between the target and worse values: for "higher is better"
    # critical <= warning <= target, for "lower is better" the other way round.
    ordered = [v for v in (critical, warning, target) if v is not None]
    if direction == Direction.LOWER:
        ordered.reverse()
        wording = "critical ≥ warning ≥ target"
    else:
        wording = "critical ≤ warning ≤ target"
    if ordered != sorted(ordered):
        raise DomainError(
            f"With '{direction.label.lower()}' the thresholds must satisfy {wording}.",
            field="warning_threshold",
        )


@transaction.atomic
def kpi_define(*, initiative: Initiative, user: User, **values: Any) -> KPI:
    """Define a KPI (accountable PM, admins, or the team's engineers)."""
    unknown = set(values) - set(KPI_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    initiative = initiative_lock(initiative)
    if not can_define_kpi(user, initiative):
        raise PermissionDenied("You may not define KPIs for this initiative.")
    if initiative.is_final:
        raise ConflictError(f"{initiative.key} is closed.", code="final_status")
    _validate(values)
    if initiative.kpis.filter(name__iexact=values["name"]).exists():
        raise DomainError(f"{initiative.key} has a KPI named {values['name']!r}.", field="name")
    return KPI.objects.create(initiative=initiative, created_by=user, **values)


@transaction.atomic
def kpi_update(*, kpi: KPI, user: User, **changes: Any) -> KPI:
    unknown = set(changes) - set(KPI_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    # Lock order everywhere: initiative, then job or KPI, then run (no deadlocks).
    initiative = initiative_lock(kpi.initiative)
    kpi = KPI.objects.select_for_update(of=("self",)).get(pk=kpi.pk)
    kpi.initiative = initiative
    if not can_define_kpi(user, kpi.initiative):
        raise PermissionDenied("You may not change KPIs of this initiative.")
    if kpi.initiative.is_final:
        raise ConflictError(f"{kpi.initiative.key} is closed.", code="final_status")
    values = {field: getattr(kpi, field) for field in KPI_FIELDS} | changes
    _validate(values)
    if kpi.initiative.kpis.filter(name__iexact=values["name"]).exclude(pk=kpi.pk).exists():
        raise DomainError(f"The initiative has a KPI named {values['name']!r}.", field="name")
    for field in KPI_FIELDS:
        setattr(kpi, field, values[field])
    kpi.save()
    return kpi


# Measurements ------------------------------------------------------------------------------


def measurement_record(
    *, kpi: KPI, as_of: dt.datetime, value: float, origin: str, run: Run | None = None
) -> Measurement:
    """Write the value of a KPI as of a moment; the same (KPI, as_of) again updates it
    (an upsert on the unique constraint, so a redelivered run never duplicates)."""
    if timezone.is_naive(as_of):
        raise DomainError("as_of needs a time zone.", field="as_of")
    Measurement.objects.bulk_create(
        [Measurement(kpi=kpi, as_of=as_of, value=value, origin=origin, run=run)],
        update_conflicts=True,
        unique_fields=["kpi", "as_of"],
        update_fields=["value", "origin", "run", "recorded_at"],
    )
    return Measurement.objects.get(kpi=kpi, as_of=as_of)


# Data sources ------------------------------------------------------------------------------


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
    if not is_admin(user):
        raise PermissionDenied("Only admins manage data sources.")
    name = (name or "").strip()
    if not name:
        raise DomainError("A name is required.", field="name", code="required")
    clash = DataSource.objects.filter(name__iexact=name)
    if source is not None:
        clash = clash.exclude(pk=source.pk)
    if clash.exists():
        raise DomainError(f"A data source named {name!r} exists already.", field="name")
    try:
        kind = DataSourceKind(kind)
    except ValueError:
        raise DomainError("The kind is 'database' or 'http'.", field="kind") from None
    url, url_env = (url or "").strip(), (url_env or "").strip()
    if url and url_env:
        raise DomainError("Give a URL or an environment variable, not both.", field="url")
    if url:
        scheme = urlsplit(url).scheme
        allowed = (
            {"postgres", "postgresql", "sqlite"}
            if kind == DataSourceKind.DATABASE
            else {
                "http",
                "https",
            }
        )
        if scheme not in allowed:
            raise DomainError(
                f"A {kind.label.lower()} URL starts with one of: {', '.join(sorted(allowed))}.",
                field="url",
            )
    if url_env and not url_env.replace("_", "").isalnum():
        raise DomainError(
            "An environment variable name has letters, digits and _.", field="url_env"
        )
    source = source or DataSource(name=name, kind=kind)
    if not (url or url_env or source.url_encrypted or source.url_env):
        raise DomainError("Give the URL or the environment variable that holds it.", field="url")
    source.name, source.kind = name, kind
    source.allow_private_addresses = allow_private_addresses
    source.description = description
    if url:
        source.url_encrypted, source.url_env, source.display_url = encrypt(url), "", redact(url)
    elif url_env:
        source.url_env, source.url_encrypted, source.display_url = url_env, "", f"${url_env}"
    source.save()
    return source


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
ENGINEER_ROLES = {TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER}


def can_operate(user: User | AnonymousUser, initiative: Initiative) -> bool:
    """Register and operate jobs: admins, and data or devops engineers on the active team."""
    if is_admin(user):
        return True
    return bool(permissions.active_roles_on(user, initiative) & ENGINEER_ROLES)


def can_run(user: User | AnonymousUser, initiative: Initiative) -> bool:
    """Start a run by hand: the operators and the accountable program manager."""
    return can_operate(user, initiative) or permissions.is_accountable(user, initiative)


def _check_job(values: dict[str, Any]) -> None:
    scheduling.check_schedule(
        values["schedule_kind"], values.get("cron", ""), values.get("interval_seconds")
    )
    if values["schedule_kind"] == ScheduleKind.CRON:
        values["cron"], values["interval_seconds"] = " ".join(values["cron"].split()), None
    else:
        values["cron"] = ""
    timeout, retries = values.get("timeout_seconds", 30), values.get("max_retries", 2)
    if not 1 <= timeout <= 3600:
        raise DomainError("The timeout is 1 to 3600 seconds.", field="timeout_seconds")
    if not 0 <= retries <= 10:
        raise DomainError("Retries are 0 to 10.", field="max_retries")
    try:
        kind = SourceKind(values.get("source_kind") or "")
    except ValueError:
        raise DomainError("The source is sql, http or python.", field="source_kind") from None
    source = values.get("data_source")
    try:
        if kind == SourceKind.PYTHON:
            if values.get("calculation") not in sources.CALCULATIONS:
                raise DomainError("Pick one of the registered calculations.", field="calculation")
            values.update(data_source=None, sql="", http_path="", json_path="")
            return
        wanted = DataSourceKind.DATABASE if kind == SourceKind.SQL else DataSourceKind.HTTP
        if source is None or source.kind != wanted:
            raise DomainError(
                f"A {kind.label} needs a {wanted.label.lower()} data source.", field="data_source"
            )
        if kind == SourceKind.SQL:
            values["sql"] = sources.check_select(values.get("sql") or "")
            values.update(http_path="", json_path="", calculation="")
        else:
            if not (values.get("json_path") or "").strip():
                raise DomainError("A JSON path is required.", field="json_path", code="required")
            sources.check_json_path(values["json_path"].strip())
            values.update(sql="", calculation="", json_path=values["json_path"].strip())
    except sources.SourceError as error:
        field = "sql" if kind == SourceKind.SQL else "json_path"
        raise DomainError(str(error), field=field) from None


@transaction.atomic
def job_register(*, kpi: KPI, user: User, **values: Any) -> Job:
    """Register the recalculation job of a KPI (one per KPI)."""
    unknown = set(values) - set(JOB_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    initiative = initiative_lock(kpi.initiative)
    if not can_operate(user, initiative):
        raise PermissionDenied("Only data or devops engineers of the team register jobs.")
    if initiative.is_final:
        raise ConflictError(f"{initiative.key} is closed.", code="final_status")
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
    unknown = set(changes) - set(JOB_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    initiative = initiative_lock(job.kpi.initiative)
    job = Job.objects.select_for_update(of=("self",)).select_related("kpi").get(pk=job.pk)
    if not can_operate(user, initiative):
        raise PermissionDenied("Only data or devops engineers of the team operate jobs.")
    if initiative.is_final:
        raise ConflictError(f"{initiative.key} is closed.", code="final_status")
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


# Runs ----------------------------------------------------------------------------------------


def _enqueue(run: Run) -> None:
    """Send the run to the workers once the transaction that created it commits."""
    from kpis.tasks import enqueue_run

    Run.objects.filter(pk=run.pk).update(
        enqueued_at=timezone.now(), deliveries=models.F("deliveries") + 1
    )
    timeout = run.job.timeout_seconds
    transaction.on_commit(lambda: enqueue_run(run.pk, timeout))


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
    if not can_run(user, initiative):
        raise PermissionDenied("Only the team's engineers or the accountable PM start runs.")
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


def dispatch_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Create one run per due job of an active initiative in Ops and advance the job.

    Jobs are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), so two dispatchers never take
    the same job; the unique (job, scheduled_for) constraint makes a second run for the same
    moment impossible anyway. A job that missed many fire times (beat was down) gets one
    catch-up run, then its next run moves past now.
    """
    now = now or timezone.now()
    created: list[int] = []
    with transaction.atomic():
        due = list(
            Job.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                enabled=True,
                next_run_at__lte=now,
                kpi__initiative__phase=Phase.OPS,
                kpi__initiative__status=Status.ACTIVE,
            )
            .select_related("kpi")
            .order_by("next_run_at")[:limit]
        )
        for job in due:
            assert job.next_run_at is not None  # noqa: S101  (filtered above)
            scheduled_for = scheduling.latest_due(
                job.schedule_kind, job.cron, job.interval_seconds, job.next_run_at, now
            )
            run, made = Run.objects.get_or_create(
                job=job, scheduled_for=scheduled_for, defaults={"trigger": Trigger.SCHEDULE}
            )
            upcoming = scheduling.next_after(
                job.schedule_kind, job.cron, job.interval_seconds, scheduled_for
            )
            if upcoming <= now:
                upcoming = scheduling.next_after(
                    job.schedule_kind, job.cron, job.interval_seconds, now
                )
            Job.objects.filter(pk=job.pk).update(next_run_at=upcoming)
            if made:
                run.job = job
                _enqueue(run)
                created.append(run.pk)
    return created


@dataclass(frozen=True)
class Outcome:
    state: str
    retry_in: int | None = None


@transaction.atomic
def run_start(*, run_id: int, worker: str) -> Run | None:
    """Claim a run for execution. None when there is nothing to do: the run is finished
    already (a redelivered message) or was skipped because its initiative left Ops."""
    # Only the run row is locked (the initiative and job are read): taking their locks here,
    # in the opposite order to run_request, deadlocked with a concurrent "run now".
    run = (
        Run.objects.select_for_update(of=("self",))
        .select_related("job__kpi__initiative")
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


@transaction.atomic
def run_succeed(*, run: Run, value: float) -> Run:
    """Record the value and the run's success in one transaction. Trial runs only test the
    job; they write no measurement."""
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if locked.is_finished:
        return locked
    if run.trigger != Trigger.TRIAL:
        measurement_record(
            kpi=run.job.kpi, as_of=run.scheduled_for, value=value, origin=Origin.RUN, run=locked
        )
        notifications.kpi_status_check(kpi=run.job.kpi)
    locked.state, locked.value, locked.finished_at = RunState.SUCCEEDED, value, timezone.now()
    locked.error = ""
    locked.save(update_fields=["state", "value", "finished_at", "error"])
    return locked


@transaction.atomic
def run_fail(*, run: Run, error: str, retry: bool) -> Outcome:
    """A failed attempt: back to queued when a retry is due, else failed for good."""
    locked = Run.objects.select_for_update(of=("self",)).select_related("job").get(pk=run.pk)
    if locked.is_finished:
        return Outcome(locked.state)
    now = timezone.now()
    if retry and locked.attempt <= locked.job.max_retries:
        delay = min(2**locked.attempt, 300)
        locked.state, locked.error = RunState.QUEUED, f"Attempt {locked.attempt} failed: {error}"
        locked.enqueued_at = now + dt.timedelta(seconds=delay)
        locked.save(update_fields=["state", "error", "enqueued_at"])
        return Outcome(RunState.QUEUED, retry_in=delay)
    locked.state, locked.error, locked.finished_at = RunState.FAILED, error[:5000], now
    locked.save(update_fields=["state", "error", "finished_at"])
    if locked.trigger != Trigger.TRIAL:
        notifications.run_failed(run=locked)
    return Outcome(RunState.FAILED)


def run_execute(*, run_id: int, worker: str = "") -> Outcome:
    """Execute one run: claim it, compute the number outside any transaction, record it."""
    run = run_start(run_id=run_id, worker=worker)
    if run is None:
        return Outcome(Run.objects.values_list("state", flat=True).get(pk=run_id))
    try:
        value = sources.evaluate(run.job)
    except sources.TransientSourceError as error:
        return run_fail(run=run, error=str(error), retry=True)
    except sources.SourceError as error:
        return run_fail(run=run, error=str(error), retry=False)
    except SoftTimeLimitExceeded:
        raise  # the task records the time limit
    except Exception as error:
        # A bug in a calculation (not a named transient error): fail the run, no retry,
        # and log it with its traceback rather than leave the run 'running'.
        log.exception("Run %s failed unexpectedly", run.pk)
        return run_fail(
            run=run, error=f"Unexpected error: {type(error).__name__}: {error}", retry=False
        )
    run_succeed(run=run, value=value)
    return Outcome(RunState.SUCCEEDED)


def runs_reap(*, now: dt.datetime | None = None) -> list[int]:
    """Send again runs whose message was lost: queued or running well past their time limit.
    Bounded by KPI_RUN_MAX_DELIVERIES; after that the run fails."""
    now = now or timezone.now()
    grace = dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS)
    resent: list[int] = []
    with transaction.atomic():
        stuck = (
            Run.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("job")
            .filter(state__in=[RunState.QUEUED, RunState.RUNNING], enqueued_at__lt=now - grace)
        )
        for run in stuck:
            limit = dt.timedelta(seconds=run.job.timeout_seconds) + grace
            since = run.started_at if run.state == RunState.RUNNING else run.enqueued_at
            if since is None or since > now - limit:
                continue
            if run.deliveries >= settings.KPI_RUN_MAX_DELIVERIES:
                run.state, run.finished_at = RunState.FAILED, now
                run.error = f"Lost: sent {run.deliveries} times without finishing."
                run.save(update_fields=["state", "finished_at", "error"])
                continue
            _enqueue(run)
            resent.append(run.pk)
    return resent


MAX_PUSH = 10_000


@transaction.atomic
def measurements_push(
    *, kpi: KPI, user: User, items: list[tuple[dt.datetime, float]]
) -> tuple[int, int]:
    """Push values of a KPI (an integration: admins or the team's engineers). The same as_of
    again updates the value. Returns (created, updated)."""
    if not items:
        raise DomainError("Give at least one measurement.", field="measurements")
    if len(items) > MAX_PUSH:
        raise DomainError(f"At most {MAX_PUSH} measurements per request.", field="measurements")
    initiative = initiative_lock(kpi.initiative)
    if not can_operate(user, initiative):
        raise PermissionDenied("Only admins and the team's data or devops engineers push values.")
    if initiative.is_final:
        raise ConflictError(f"{initiative.key} is closed.", code="final_status")
    latest: dict[dt.datetime, float] = {}
    for as_of, value in items:
        if timezone.is_naive(as_of):
            raise DomainError("as_of needs a time zone.", field="as_of")
        latest[as_of] = value  # the last value given for a moment wins
    existing = set(
        Measurement.objects.filter(kpi=kpi, as_of__in=list(latest)).values_list("as_of", flat=True)
    )
    Measurement.objects.bulk_create(
        [
            Measurement(kpi=kpi, as_of=as_of, value=value, origin=Origin.API)
            for as_of, value in latest.items()
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["kpi", "as_of"],
        update_fields=["value", "origin", "run", "recorded_at"],
    )
    updated = sum(1 for as_of in latest if as_of in existing)
    notifications.kpi_status_check(kpi=kpi)
    return len(latest) - updated, updated
