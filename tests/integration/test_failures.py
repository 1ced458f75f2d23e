"""Failing runs on a real worker: a transient error is retried (by Celery, with the backoff
the service chose) up to the job's retry count; a permanent error fails at once; a run that
exceeds its time limit is stopped by the prefork pool and failed, not left running."""

from __future__ import annotations

from pathlib import Path

from jobs import services as job_services
from jobs.models import Run, RunState
from kpis.models import Measurement
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.integration.worker_calculations import (
    ALWAYS_TRANSIENT,
    BROKEN,
    BROKEN_MESSAGE,
    FLAKY_FIRST,
    FLAKY_FIRST_VALUE,
    SLOW_FIRST,
    TRANSIENT_MESSAGE,
    marker_path,
)

pytestmark = INTEGRATION

FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]


def wait_finished(run_id: int, timeout: float = 30.0) -> Run:
    wait_for(
        lambda: Run.objects.filter(pk=run_id, state__in=FINISHED).exists(),
        f"run {run_id} to finish",
        timeout=timeout,
        describe=lambda: Run.objects.filter(pk=run_id).values("state", "attempt", "error")[0],
    )
    return Run.objects.get(pk=run_id)


def test_a_transient_error_is_retried_and_the_run_succeeds(portfolio: Portfolio, worker: Worker):
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live", FLAKY_FIRST, max_retries=2)

    run = wait_finished(job_services.run_request(job=job, user=portfolio.engineer).pk)

    assert run.state == RunState.SUCCEEDED, run.error
    assert (run.attempt, run.deliveries, run.value) == (2, 1, FLAKY_FIRST_VALUE)
    assert run.error == ""
    assert Measurement.objects.get(kpi=job.kpi).value == FLAKY_FIRST_VALUE
    assert "attempt 1 failed; retry in 2s" in worker.log()  # the backoff of the first attempt


def test_retries_are_bounded_and_permanent_errors_are_not_retried(
    portfolio: Portfolio, worker: Worker
):
    initiative = portfolio.initiative("Fraud scoring")
    flaky = portfolio.job(initiative, "Always transient", ALWAYS_TRANSIENT, max_retries=1)
    broken = portfolio.job(initiative, "Broken", BROKEN, max_retries=3)

    flaky_run = job_services.run_request(job=flaky, user=portfolio.engineer)
    broken_run = job_services.run_request(job=broken, user=portfolio.engineer)

    flaky_run = wait_finished(flaky_run.pk)
    assert flaky_run.state == RunState.FAILED
    assert flaky_run.attempt == 2  # the first attempt and max_retries=1 retry
    assert flaky_run.error == TRANSIENT_MESSAGE
    broken_run = wait_finished(broken_run.pk)
    assert (broken_run.state, broken_run.attempt) == (RunState.FAILED, 1)
    assert broken_run.error == BROKEN_MESSAGE
    assert not Measurement.objects.filter(kpi__in=[flaky.kpi, broken.kpi]).exists()


def test_a_run_past_its_time_limit_is_stopped_and_failed(
    portfolio: Portfolio, worker: Worker, marker_dir: Path
):
    """SLOW_FIRST hangs for a minute; the soft time limit (timeout + 10 s) stops it."""
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Slow KPI", SLOW_FIRST, timeout_seconds=1, max_retries=2)

    run = job_services.run_request(job=job, user=portfolio.engineer)

    run = wait_finished(run.pk, timeout=40)
    assert marker_path(marker_dir, job.pk).exists()  # it did start computing
    assert (run.state, run.attempt) == (RunState.FAILED, 1)
    assert run.error == "The run exceeded its time limit."
    assert run.duration is not None and 10 <= run.duration < 30
    assert not Measurement.objects.filter(kpi=job.kpi).exists()
