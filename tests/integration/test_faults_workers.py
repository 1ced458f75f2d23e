"""Fault: one run's message is delivered twice, to two workers at the same moment (the
outbox sends a message twice when the relay dies between the broker taking it and the row's
delete; Redis redelivers one whose acknowledgement was lost).

Expected: one measurement per run, the run finished once (its value, end and measurement are
the first finisher's; the late one changes nothing), nothing left in the queues.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bizdevops import outbox
from bizdevops.celery import app
from jobs import services as job_services
from jobs.models import Run, RunState
from kpis.models import Measurement
from tests.integration.faults import each_once, tally
from tests.integration.helpers import INTEGRATION, Portfolio, wait_for
from tests.integration.worker_calculations import (
    ANSWER_VALUE,
    SLOW,
    SLOW_SECONDS_ENV,
    SLOW_VALUE,
    executions,
)

pytestmark = INTEGRATION

SLOW_SECONDS = 3
RUNS = 20
FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]


def send_again(run: Run) -> None:
    """The same message once more, as a duplicate from the outbox would be."""
    outbox.enqueue(job_services.EXECUTE_RUN, run.pk, time_limit=run.job.timeout_seconds + 30)


def expected_tally(runs: int, executed_twice: int) -> dict[str, int]:
    # `runs sent more than once` counts the application's sends (`deliveries`): 0 here.
    return each_once(runs, deliveries=0) | {"runs executed more than once": executed_twice}


def test_a_run_delivered_to_two_workers_at_once_records_one_measurement(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path
):
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live", SLOW, timeout_seconds=60)
    app.control.purge()  # the trial runs' (finished) messages: the workers start idle
    env = {SLOW_SECONDS_ENV: str(SLOW_SECONDS)}
    workers = {start_worker(**env).name, start_worker(**env).name}

    run = job_services.run_request(job=job, user=portfolio.engineer)
    send_again(run)

    # Both workers compute the run at the same time (two pool processes, overlapping).
    both = wait_for(
        lambda: (
            (e := executions(marker_dir, job.pk))
            and [what for what, _ in e[:2]] == ["start", "start"]
            and e
        ),
        "both workers to start computing the run",
        describe=lambda: executions(marker_dir, job.pk),
    )
    assert both[0][1] != both[1][1]
    wait_for(
        lambda: Run.objects.filter(pk=run.pk, state__in=FINISHED).exists(),
        "the run to finish",
        describe=lambda: Run.objects.filter(pk=run.pk).values("state", "attempt", "worker")[0],
    )
    first = Run.objects.get(pk=run.pk)
    first_measurement = Measurement.objects.get(kpi=job.kpi)
    wait_for(
        lambda: [what for what, _ in executions(marker_dir, job.pk)].count("end") == 2,
        "the second worker to finish computing",
        describe=lambda: executions(marker_dir, job.pk),
    )
    time.sleep(1)  # the late finisher's transaction

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    # Both executions started (attempt counts them), one finished the run.
    assert (run.attempt, run.deliveries, run.value) == (2, 1, SLOW_VALUE)
    assert run.finished_at == first.finished_at  # finished once: the late one changed nothing
    assert run.worker in workers
    measurement = Measurement.objects.get(kpi=job.kpi)  # exactly one
    assert (measurement.run_id, measurement.value, measurement.as_of) == (
        run.pk,
        SLOW_VALUE,
        run.scheduled_for,
    )
    assert measurement.recorded_at == first_measurement.recorded_at  # not written again
    got = tally(jobs=[job])
    print(f"\nexecutions {executions(marker_dir, job.pk)}")
    print(f"expected {expected_tally(1, 1)}\ngot      {got}")
    assert got == expected_tally(1, 1)


def test_many_runs_each_delivered_twice_to_two_workers_finish_once_each(
    portfolio: Portfolio, start_worker: Any
):
    initiative = portfolio.initiative("Portfolio of KPIs")
    jobs = [portfolio.job(initiative, f"KPI {n:02}") for n in range(RUNS)]
    app.control.purge()
    start_worker()
    start_worker()

    runs = []
    for job in jobs:
        run = job_services.run_request(job=job, user=portfolio.engineer)
        send_again(run)
        runs.append(run.pk)
    wait_for(
        lambda: Run.objects.filter(pk__in=runs, state__in=FINISHED).count() == RUNS,
        "every run to finish",
        describe=lambda: list(
            Run.objects.filter(pk__in=runs).exclude(state__in=FINISHED).values_list("pk", "state")
        ),
    )
    time.sleep(2)  # the duplicates still on their way

    executed_twice = Run.objects.filter(pk__in=runs, attempt__gt=1).count()
    got = tally(jobs=jobs)
    print(f"\n{executed_twice} of {RUNS} runs were computed by both workers")
    print(f"expected {expected_tally(RUNS, executed_twice)}\ngot      {got}")
    assert got == expected_tally(RUNS, executed_twice)
    assert set(Run.objects.filter(pk__in=runs).values_list("value", flat=True)) == {ANSWER_VALUE}
    assert set(Run.objects.filter(pk__in=runs).values_list("attempt", flat=True)) <= {1, 2}
