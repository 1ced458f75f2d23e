"""Stopping a worker while it computes a run (issue 11): SIGTERM to its main process, as
`docker stop` sends it (and systemd with KillMode=mixed).

- Plain SIGTERM is Celery's warm shutdown: the worker takes no new message, finishes the run in
  hand, acknowledges it and exits. It waits however long the run takes.
- With REMAP_SIGTERM=SIGQUIT in the worker's environment SIGTERM is a cold shutdown: the runs
  in hand get CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT seconds; those that finish are acknowledged,
  the others are stopped, their messages go back to the Redis queue (kombu restores the
  unacknowledged ones when the worker closes its channel) and their runs back to queued, and
  the next worker executes them once.
- SIGTERM to the whole process group (systemd's default KillMode=control-group) kills the pool
  process at once: its message is requeued (reject_on_worker_lost) and its run put back to
  queued when the worker has stopped.

None of this depends on a queue's name: the counts are over every queue the app declares.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import redis

from bizdevops.celery import app as celery_app
from jobs import services as job_services
from jobs.models import Job, Run, RunState
from kpis.models import Measurement, Origin
from tests.integration.helpers import (
    INTEGRATION,
    UNACKED_KEY,
    WORKER_STOP_SECONDS,
    Portfolio,
    Worker,
    wait_for,
)
from tests.integration.test_worker_lost import process_exists
from tests.integration.worker_calculations import SLOW, SLOW_SECONDS_ENV, SLOW_VALUE, executions

pytestmark = INTEGRATION

JOB_TIMEOUT = 120
SOFT_SHUTDOWN_SECONDS = 2
# SIGTERM is a cold shutdown, after a soft one of SOFT_SHUTDOWN_SECONDS.
COLD = {
    "REMAP_SIGTERM": "SIGQUIT",
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_SHUTDOWN_SECONDS),
}
# Longer than any wait of these tests: such a run only ends when its worker stops it.
ENDLESS = "600"
QUICK = "0.5"


def messages_waiting(broker: redis.Redis) -> int:
    """Messages in the task queues the app declares (whatever their names)."""
    return sum(broker.llen(queue) for queue in celery_app.amqp.queues)


def describe(run_id: int) -> Any:
    return Run.objects.filter(pk=run_id).values(
        "state", "attempt", "deliveries", "worker", "error"
    )[0]


def start_run(portfolio: Portfolio, worker: Worker, marker_dir: Path) -> tuple[Job, Run, int]:
    """A run of a SLOW job, computing on `worker`; returns the job, the run and the pid of the
    pool process that computes it."""
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live", SLOW, timeout_seconds=JOB_TIMEOUT)
    run = job_services.run_request(job=job, user=portfolio.engineer)
    wait_for(
        lambda: (
            executions(marker_dir, job.pk)
            and Run.objects.filter(pk=run.pk, state=RunState.RUNNING).exists()
        ),
        "the worker to start computing the run",
        describe=lambda: (executions(marker_dir, job.pk), describe(run.pk)),
    )
    run.refresh_from_db()
    assert (run.attempt, run.deliveries, run.worker) == (1, 1, worker.name)
    [(_, pool_pid)] = executions(marker_dir, job.pk)
    assert os.getpgid(pool_pid) == worker.process.pid  # one of this worker's processes
    return job, run, pool_pid


def terminate(worker: Worker, *, pool_pid: int) -> float:
    """SIGTERM the worker's main process; it exits with 0 and takes its pool process with
    it. Returns how long it took."""
    started = time.monotonic()
    assert worker.terminate() == 0, worker.log_tail()
    took = time.monotonic() - started
    wait_for(lambda: not process_exists(pool_pid), "the worker's pool process to be gone")
    return took


def assert_requeued(run: Run, worker: Worker, broker: redis.Redis) -> None:
    """The worker is gone; its run is queued again, with its one message back in a queue."""
    run.refresh_from_db()
    assert (run.state, run.attempt, run.deliveries) == (RunState.QUEUED, 1, 1)
    assert run.error == f"Attempt 1 stopped: the worker {worker.name} shut down."
    assert broker.hlen(UNACKED_KEY) == 0
    assert messages_waiting(broker) == 1


def wait_finished(run: Run, broker: redis.Redis) -> Run:
    wait_for(
        lambda: Run.objects.filter(
            pk=run.pk, state__in=[RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]
        ).exists(),
        f"run {run.pk} to finish",
        describe=lambda: describe(run.pk),
    )
    # ... and its message to be acknowledged: nothing left to deliver again.
    wait_for(
        lambda: broker.hlen(UNACKED_KEY) == 0 and messages_waiting(broker) == 0,
        "the run's message to be acknowledged",
        describe=lambda: (broker.hlen(UNACKED_KEY), messages_waiting(broker)),
    )
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    return run


def assert_once(job: Job, run: Run, marker_dir: Path, *, computed_by: int) -> None:
    """One run, one measurement, one computation that finished (by pool process
    `computed_by`), nothing left running."""
    assert Run.objects.filter(job=job).count() == 1
    measurement = Measurement.objects.get(kpi=job.kpi)  # exactly one
    assert (measurement.value, measurement.as_of) == (SLOW_VALUE, run.scheduled_for)
    assert (measurement.origin, measurement.run_id) == (Origin.RUN, run.pk)
    assert [pid for what, pid in executions(marker_dir, job.pk) if what == "end"] == [computed_by]
    assert not Run.objects.filter(state=RunState.RUNNING).exists()


def test_sigterm_lets_the_run_in_hand_finish_then_the_worker_exits(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    worker = start_worker(**{SLOW_SECONDS_ENV: "4"})
    job, run, pool_pid = start_run(portfolio, worker, marker_dir)

    took = terminate(worker, pool_pid=pool_pid)

    run = wait_finished(run, broker)
    assert took < WORKER_STOP_SECONDS
    assert (run.attempt, run.deliveries, run.worker, run.value) == (1, 1, worker.name, SLOW_VALUE)
    assert executions(marker_dir, job.pk) == [("start", pool_pid), ("end", pool_pid)]
    assert_once(job, run, marker_dir, computed_by=pool_pid)
    assert "Warm shutdown" in worker.log()


def test_a_warm_shutdown_waits_for_a_long_run(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    """Why the cold shutdown: without it, a run longer than the stop timeout is still
    computing when docker or systemd SIGKILLs the worker (test_worker_lost.py's case)."""
    worker = start_worker(**{SLOW_SECONDS_ENV: ENDLESS})
    _, run, _ = start_run(portfolio, worker, marker_dir)

    os.kill(worker.process.pid, signal.SIGTERM)
    time.sleep(SOFT_SHUTDOWN_SECONDS + 4)  # longer than a cold shutdown takes

    assert worker.alive
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    assert broker.hlen(UNACKED_KEY) == 1
    assert messages_waiting(broker) == 0


def test_a_run_longer_than_the_soft_shutdown_goes_back_to_the_queue_for_the_next_worker(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    worker_a = start_worker(**{SLOW_SECONDS_ENV: ENDLESS}, **COLD)
    job, run, pool_a = start_run(portfolio, worker_a, marker_dir)

    took = terminate(worker_a, pool_pid=pool_a)

    assert SOFT_SHUTDOWN_SECONDS <= took < SOFT_SHUTDOWN_SECONDS + 8
    assert "Cold shutdown" in worker_a.log()
    assert_requeued(run, worker_a, broker)

    worker_b = start_worker(**{SLOW_SECONDS_ENV: QUICK})  # the restarted worker

    run = wait_finished(run, broker)
    assert (run.attempt, run.deliveries, run.worker, run.value) == (2, 1, worker_b.name, SLOW_VALUE)
    pool_b = executions(marker_dir, job.pk)[-1][1]
    assert executions(marker_dir, job.pk) == [("start", pool_a), ("start", pool_b), ("end", pool_b)]
    assert_once(job, run, marker_dir, computed_by=pool_b)


def test_a_worker_that_is_up_takes_over_the_run_of_one_that_shuts_down(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    """A rolling restart: worker B consumes while worker A shuts down; it gets the message
    back from Redis at once and executes the run once."""
    worker_a = start_worker(**{SLOW_SECONDS_ENV: ENDLESS}, **COLD)
    job, run, pool_a = start_run(portfolio, worker_a, marker_dir)
    worker_b = start_worker(**{SLOW_SECONDS_ENV: QUICK})

    terminate(worker_a, pool_pid=pool_a)

    run = wait_finished(run, broker)
    assert (run.attempt, run.deliveries, run.worker, run.value) == (2, 1, worker_b.name, SLOW_VALUE)
    assert [what for what, _ in executions(marker_dir, job.pk)] == ["start", "start", "end"]
    assert_once(job, run, marker_dir, computed_by=executions(marker_dir, job.pk)[-1][1])
    assert worker_b.alive


def test_a_run_shorter_than_the_soft_shutdown_finishes_before_the_worker_exits(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    worker = start_worker(
        **{SLOW_SECONDS_ENV: "1.5"}, **(COLD | {"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "5"})
    )
    job, run, pool_pid = start_run(portfolio, worker, marker_dir)

    took = terminate(worker, pool_pid=pool_pid)

    # The soft shutdown lasts its whole timeout as soon as a task is in hand.
    assert took >= 5
    run = wait_finished(run, broker)
    assert (run.attempt, run.deliveries, run.worker) == (1, 1, worker.name)
    assert executions(marker_dir, job.pk) == [("start", pool_pid), ("end", pool_pid)]
    assert_once(job, run, marker_dir, computed_by=pool_pid)
    assert "Restoring" not in worker.log()  # nothing was left unacknowledged


def test_sigterm_to_the_whole_group_requeues_the_run_of_the_killed_pool_process(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    """systemd's default KillMode=control-group signals every process of the unit: the pool
    process dies of the SIGTERM at once (WorkerLostError), the main process requeues its
    message, finishes a warm shutdown and puts the run back to queued."""
    worker_a = start_worker(**{SLOW_SECONDS_ENV: ENDLESS})
    job, run, pool_a = start_run(portfolio, worker_a, marker_dir)

    os.killpg(worker_a.process.pid, signal.SIGTERM)
    assert worker_a.process.wait(timeout=WORKER_STOP_SECONDS) == 0
    wait_for(lambda: not process_exists(pool_a), "the pool process to be gone")

    assert "WorkerLostError" in worker_a.log()
    assert_requeued(run, worker_a, broker)

    worker_b = start_worker(**{SLOW_SECONDS_ENV: QUICK})

    run = wait_finished(run, broker)
    assert (run.attempt, run.deliveries, run.worker) == (2, 1, worker_b.name)
    assert_once(job, run, marker_dir, computed_by=executions(marker_dir, job.pk)[-1][1])
