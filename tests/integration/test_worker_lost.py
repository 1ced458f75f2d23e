"""A worker killed with SIGKILL in the middle of a run (no warm shutdown, no acknowledgement):
the run still finishes exactly once, with one measurement, on another worker. Either Redis
redelivers the unacknowledged message after the visibility timeout, or the reaper resends the
run once it is past its time limit."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Run, RunState
from jobs.tasks import execute_run
from kpis.models import Measurement, Origin
from tests.integration.helpers import (
    INTEGRATION,
    TASK_QUEUE,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    Portfolio,
    Worker,
    wait_for,
)
from tests.integration.worker_calculations import SLOW_FIRST, SLOW_FIRST_VALUE, marker_path

pytestmark = INTEGRATION

VISIBILITY_TIMEOUT = 3
JOB_TIMEOUT = 30


def describe(run_id: int) -> Any:
    return Run.objects.filter(pk=run_id).values(
        "state", "attempt", "deliveries", "worker", "error"
    )[0]


def start_and_kill_mid_run(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis, **env: Any
) -> tuple[Run, Worker]:
    """A run of a SLOW_FIRST job, taken by worker A, which is SIGKILLed while it computes."""
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live", SLOW_FIRST, timeout_seconds=JOB_TIMEOUT)
    worker_a = start_worker(**env)
    run = job_services.run_request(job=job, user=portfolio.engineer)
    marker = marker_path(marker_dir, job.pk)
    wait_for(
        lambda: marker.exists() and Run.objects.filter(pk=run.pk, state=RunState.RUNNING).exists(),
        "worker A to start computing the run",
        describe=lambda: (marker.exists(), describe(run.pk)),
    )
    run.refresh_from_db()
    assert (run.attempt, run.deliveries, run.worker) == (1, 1, worker_a.name)
    pool_pid = int(wait_for(marker.read_text, "the marker to hold the pool process id"))

    worker_a.kill()

    assert not worker_a.alive
    # The pool process went with it (else it would finish the run behind worker B's back).
    wait_for(lambda: not process_exists(pool_pid), "worker A's pool process to be gone")
    # The message was taken and never acknowledged: it sits in Redis' unacked set.
    assert broker.hlen(UNACKED_KEY) == 1
    assert broker.llen(TASK_QUEUE) == 0
    return run, worker_a


def process_exists(pid: int) -> bool:
    """True while the process runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_succeeded(run_id: int) -> Run:
    wait_for(
        lambda: Run.objects.filter(
            pk=run_id, state__in=[RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]
        ).exists(),
        f"run {run_id} to finish",
        describe=lambda: describe(run_id),
    )
    run = Run.objects.get(pk=run_id)
    assert run.state == RunState.SUCCEEDED, run.error
    return run


def assert_one_measurement(run: Run) -> None:
    measurement = Measurement.objects.get(kpi=run.job.kpi)  # exactly one
    assert (measurement.value, measurement.as_of) == (SLOW_FIRST_VALUE, run.scheduled_for)
    assert (measurement.origin, measurement.run_id) == (Origin.RUN, run.pk)


def test_redis_redelivers_the_run_of_a_killed_worker_and_it_finishes_once(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    run, _ = start_and_kill_mid_run(
        portfolio, start_worker, marker_dir, broker, visibility_timeout=VISIBILITY_TIMEOUT
    )
    # Worker B restores unacknowledged messages older than the visibility timeout when it
    # starts polling (and then only every few dozen seconds), so let the message age first.
    (delivered_at,) = [
        score for _, score in broker.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True)
    ]
    time.sleep(max(0.0, delivered_at + VISIBILITY_TIMEOUT + 1 - time.time()))

    worker_b = start_worker(visibility_timeout=VISIBILITY_TIMEOUT)

    run = wait_succeeded(run.pk)
    assert run.attempt == 2  # worker A's attempt and worker B's, no more
    assert run.deliveries == 1  # redelivered by Redis, not resent by the application
    assert (run.worker, run.value) == (worker_b.name, SLOW_FIRST_VALUE)
    assert_one_measurement(run)
    # Worker B acknowledged it: nothing left to redeliver.
    wait_for(lambda: broker.hlen(UNACKED_KEY) == 0, "worker B to acknowledge the message")
    assert broker.llen(TASK_QUEUE) == 0
    run.refresh_from_db()
    assert (run.state, run.attempt) == (RunState.SUCCEEDED, 2)


def test_the_reaper_resends_the_run_of_a_killed_worker_and_it_finishes_once(
    portfolio: Portfolio, start_worker: Any, marker_dir: Path, broker: redis.Redis
):
    # The default (long) visibility timeout: Redis does not redeliver during the test, only
    # the reaper can save the run.
    run, _ = start_and_kill_mid_run(portfolio, start_worker, marker_dir, broker)
    worker_b = start_worker()
    assert job_services.runs_reap() == []  # still within its time limit and the grace

    later = timezone.now() + dt.timedelta(seconds=JOB_TIMEOUT + settings.KPI_RUN_GRACE_SECONDS + 60)
    assert job_services.runs_reap(now=later) == [run.pk]

    run = wait_succeeded(run.pk)
    assert (run.attempt, run.deliveries) == (2, 2)
    assert (run.worker, run.value) == (worker_b.name, SLOW_FIRST_VALUE)
    assert_one_measurement(run)
    assert job_services.runs_reap(now=later) == []  # finished runs are left alone

    # The lost message turning up after all (a late redelivery) changes nothing.
    late = execute_run.apply_async(args=[run.pk])
    done = re.compile(rf"Task jobs\.tasks\.execute_run\[{late.id}\] succeeded in .*: 'succeeded'")
    wait_for(
        lambda: done.search(worker_b.log()),
        "worker B to process the late duplicate message",
        describe=worker_b.log_tail,
    )
    run.refresh_from_db()
    assert (run.state, run.attempt, run.deliveries) == (RunState.SUCCEEDED, 2, 2)
    assert_one_measurement(run)


def test_a_pool_process_killed_mid_run_is_requeued_at_once_and_finishes_once(
    portfolio: Portfolio, worker: Worker, marker_dir: Path, broker: redis.Redis
):
    """The OOM killer takes the pool process, the worker's main process survives: with
    acks_late and reject_on_worker_lost the message goes back to the queue at once."""
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live", SLOW_FIRST, timeout_seconds=JOB_TIMEOUT)
    run = job_services.run_request(job=job, user=portfolio.engineer)
    marker = marker_path(marker_dir, job.pk)
    wait_for(
        lambda: marker.exists() and Run.objects.filter(pk=run.pk, state=RunState.RUNNING).exists(),
        "the worker to start computing the run",
        describe=lambda: (marker.exists(), describe(run.pk)),
    )
    pool_pid = int(wait_for(marker.read_text, "the marker to hold the pool process id"))
    assert pool_pid != worker.process.pid
    assert os.getpgid(pool_pid) == worker.process.pid  # one of our worker's processes

    os.kill(pool_pid, signal.SIGKILL)

    run = wait_succeeded(run.pk)
    assert (run.attempt, run.deliveries) == (2, 1)
    assert (run.worker, run.value) == (worker.name, SLOW_FIRST_VALUE)
    assert_one_measurement(run)
    assert "WorkerLostError" in worker.log()
    assert worker.alive
