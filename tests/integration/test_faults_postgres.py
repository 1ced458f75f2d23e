"""Fault: the app's PostgreSQL backends are terminated (pg_terminate_backend, as a failover,
a restart or an administrator does) while a real worker dispatches, computes a run or writes
its result. Only the worker's own backends die: it is started with an application_name of
its own, and the terminator picks the test database's backends by that name (never this
process's connection).

Expected: the work that lost its connection is done again on a new one where it happens
(bizdevops.db.retry_on_lost_connection): every due job gets exactly one run, every run
executes once and records one measurement, and nothing waits for the reaper.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Count

from bizdevops.celery import app
from jobs import services as job_services
from jobs.models import Job, Run, RunState
from jobs.tasks import DISPATCH
from kpis.models import Measurement
from tests.integration.faults import (
    BackendTerminator,
    app_database_url,
    each_once,
    lost_connection_count,
    tally,
    wait_quiet,
)
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.integration.worker_calculations import (
    ANSWER_VALUE,
    KILLS_ITS_CONNECTION,
    KILLS_ITS_CONNECTION_VALUE,
    SLOW,
    SLOW_SECONDS_ENV,
    SLOW_VALUE,
    executions,
)

pytestmark = INTEGRATION

DUE_JOBS = 50
# How long the dispatcher's backends keep being terminated after it first lost one: its
# retries wait 0.25, 0.5, 1, 2 s, so it gets through on the third or fourth attempt.


class RolledBack(Exception):
    """Leaves a transaction the test rolls back on purpose."""


SLOW_SECONDS = 4.0
# A run whose connection died must finish on the worker, not after the reaper's grace.
RUN_FINISHED_SECONDS = 20.0
FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]


def app_worker(start_worker: Any, **env: str) -> tuple[Worker, BackendTerminator]:
    """A worker (with the outbox sweep) whose backends the returned terminator picks."""
    name = f"bizdevops-worker-{uuid.uuid4().hex[:12]}"
    worker = start_worker(beat=True, DATABASE_URL=app_database_url(name), **env)
    return worker, BackendTerminator(name)


def describe_runs(jobs: list[Job]) -> Any:
    return list(
        Run.objects.filter(job__in=jobs).values_list("pk", "job_id", "state", "attempt", "error")
    )


def wait_finished(jobs: list[Job], count: int, timeout: float) -> None:
    wait_for(
        lambda: Run.objects.filter(job__in=jobs, state__in=FINISHED).count() >= count,
        f"{count} runs to finish",
        timeout=timeout,
        describe=lambda: describe_runs(jobs),
    )


def test_the_dispatcher_losing_its_backends_creates_one_run_per_due_job(
    portfolio: Portfolio, start_worker: Any
) -> None:
    initiative = portfolio.initiative("Fraud scoring")
    jobs = [portfolio.job(initiative, f"KPI {n}") for n in range(DUE_JOBS)]
    worker, terminator = app_worker(start_worker)
    due_at = portfolio.make_due(*jobs)

    started = time.monotonic()
    with terminator, contextlib.suppress(RolledBack), transaction.atomic():
        # An uncommitted run of the first job at the due moment: the dispatcher's insert of
        # its runs waits on it (unique job and moment) in the middle of its transaction, and
        # the terminator catches it there. (A worker opens a new connection for every task,
        # so only a backend terminated mid-task is a fault of the dispatch.)
        Run.objects.create(job=jobs[0], scheduled_for=due_at)
        app.send_task(DISPATCH)  # as beat sends it (routed to `control`)
        wait_for(
            lambda: lost_connection_count(worker.log(), "the dispatch") > 0,
            "the dispatcher to lose its connection",
            timeout=10,
            describe=worker.log_tail,
        )
        raise RolledBack
    lost = lost_connection_count(worker.log(), "the dispatch")
    wait_finished(jobs, DUE_JOBS, timeout=30)
    finished = time.monotonic() - started
    wait_quiet(2)

    got = tally(jobs=jobs, webhooks=False)
    expected = each_once(DUE_JOBS)
    print(
        f"\nterminated {len(terminator.terminated)} backends; the dispatch lost its connection"
        f" {lost} times; {DUE_JOBS} runs finished after {finished:.1f} s"
    )
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    per_job = (
        Run.objects.filter(job__in=jobs).values("job_id", "scheduled_for").annotate(n=Count("id"))
    )
    assert {(row["job_id"], row["scheduled_for"], row["n"]) for row in per_job} == {
        (job.pk, due_at, 1) for job in jobs
    }
    assert set(Run.objects.filter(job__in=jobs).values_list("attempt", "deliveries", "value")) == {
        (1, 1, ANSWER_VALUE)
    }
    # Each job advanced once, to its next fire time (hourly jobs).
    next_runs = Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list(
        "next_run_at", flat=True
    )
    assert set(next_runs) == {due_at + dt.timedelta(hours=1)}
    assert worker.alive


def test_a_run_whose_backend_is_terminated_while_it_computes_succeeds(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path
) -> None:
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Slow KPI", calculation=SLOW)
    worker, terminator = app_worker(start_worker, **{SLOW_SECONDS_ENV: str(SLOW_SECONDS)})

    run = job_services.run_request(job=job, user=portfolio.engineer)
    started = time.monotonic()
    wait_for(lambda: executions(marker_dir, job.pk), "the run to start computing")
    with terminator:
        # Terminated again and again while the calculation runs, until it has its value.
        wait_for(
            lambda: len(executions(marker_dir, job.pk)) == 2,
            "the calculation to end",
            timeout=SLOW_SECONDS + 10,
        )
    wait_finished([job], 1, timeout=RUN_FINISHED_SECONDS)
    finished = time.monotonic() - started
    wait_quiet(2)

    got = tally(jobs=[job], webhooks=False)
    print(
        f"\nterminated {len(terminator.terminated)} backends while the run computed; it finished"
        f" {finished:.1f} s after it was requested (computing takes {SLOW_SECONDS:g} s)"
    )
    print(f"expected {each_once(1)}\ngot      {got}")
    assert got == each_once(1)
    assert terminator.terminated, "the worker had no backend to terminate"
    run.refresh_from_db()
    assert (run.state, run.value, run.attempt, run.deliveries) == (
        RunState.SUCCEEDED,
        SLOW_VALUE,
        1,
        1,
    ), run.error
    assert run.worker == worker.name
    measurement = Measurement.objects.get(kpi=job.kpi)
    assert (measurement.run_id, measurement.value) == (run.pk, SLOW_VALUE)
    assert lost_connection_count(worker.log(), f"the result of run {run.pk}") >= 1, (
        worker.log_tail()
    )
    assert len(executions(marker_dir, job.pk)) == 2  # computed once


def test_a_run_whose_backend_dies_before_the_result_write_succeeds(
    portfolio: Portfolio, start_worker: Any
) -> None:
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "KPI", calculation=KILLS_ITS_CONNECTION)
    worker, _ = app_worker(start_worker)

    run = job_services.run_request(job=job, user=portfolio.engineer)
    started = time.monotonic()
    wait_finished([job], 1, timeout=RUN_FINISHED_SECONDS)
    finished = time.monotonic() - started
    wait_quiet(2)

    got = tally(jobs=[job], webhooks=False)
    print(f"\nthe run finished {finished:.1f} s after it was requested")
    print(f"expected {each_once(1)}\ngot      {got}")
    assert got == each_once(1)
    run.refresh_from_db()
    assert (run.state, run.value, run.attempt, run.deliveries) == (
        RunState.SUCCEEDED,
        KILLS_ITS_CONNECTION_VALUE,
        1,
        1,
    ), run.error
    measurement = Measurement.objects.get(kpi=job.kpi)
    assert (measurement.run_id, measurement.value) == (run.pk, KILLS_ITS_CONNECTION_VALUE)
    assert lost_connection_count(worker.log(), f"the result of run {run.pk}") == 1, (
        worker.log_tail()
    )
