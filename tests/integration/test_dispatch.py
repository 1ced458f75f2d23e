"""Due jobs through a real worker: the dispatcher (called here, as beat's task would) creates
one run per due job of an active Ops initiative, enqueues it on commit, and the worker records
exactly one run and one measurement."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connections

from bizdevops.celery import app
from initiatives.models import Phase, Status
from jobs import services as job_services
from jobs.models import Job, Run, RunState, Trigger
from kpis.models import Measurement, Origin
from phases.models import Decision
from tests.factories import decide
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.integration.worker_calculations import ANSWER_VALUE, JOB_PK

pytestmark = INTEGRATION


def runs_of(*jobs: Job) -> list[dict[str, Any]]:
    return list(
        Run.objects.filter(job__in=jobs)
        .order_by("job_id", "scheduled_for")
        .values("id", "job_id", "scheduled_for", "state", "attempt", "deliveries", "error")
    )


def wait_finished(*run_ids: int) -> list[Run]:
    """Wait until every run is finished; return them (in the order given)."""
    finished = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]

    def all_finished() -> bool:
        return Run.objects.filter(pk__in=run_ids, state__in=finished).count() == len(run_ids)

    wait_for(
        all_finished,
        f"runs {sorted(run_ids)} to finish",
        describe=lambda: list(
            Run.objects.filter(pk__in=run_ids).values_list("pk", "state", "attempt", "error")
        ),
    )
    runs = Run.objects.in_bulk(run_ids)
    return [runs[pk] for pk in run_ids]


def test_a_due_job_runs_once_on_the_worker_and_records_one_measurement(
    portfolio: Portfolio, worker: Worker
):
    initiative = portfolio.initiative("Churn radar")
    job = portfolio.job(initiative, "Churn caught")
    due_at = portfolio.make_due(job)

    created = job_services.dispatch_due()

    assert len(created) == 1, created
    (run,) = wait_finished(created[0])
    assert run.job_id == job.pk
    assert run.state == RunState.SUCCEEDED, run.error
    assert (run.trigger, run.scheduled_for) == (Trigger.SCHEDULE, due_at)
    assert (run.attempt, run.deliveries) == (1, 1)
    assert run.worker == worker.name  # executed by the subprocess, not in this process
    assert run.value == ANSWER_VALUE
    assert run.started_at is not None and run.finished_at is not None
    assert run.finished_at >= run.started_at

    assert Run.objects.filter(job=job).count() == 1
    measurement = Measurement.objects.get(kpi=job.kpi)
    assert (measurement.as_of, measurement.value) == (due_at, ANSWER_VALUE)
    assert (measurement.origin, measurement.run_id) == (Origin.RUN, run.pk)

    job.refresh_from_db()
    assert job.next_run_at == due_at + dt.timedelta(hours=1)
    assert job_services.dispatch_due() == []  # nothing is due any more
    assert Run.objects.filter(job=job).count() == 1


def test_the_dispatch_task_on_the_worker_enqueues_and_executes_the_run(
    portfolio: Portfolio, worker: Worker
):
    """What beat does: send `jobs.tasks.dispatch`; the worker dispatches, its on-commit
    enqueue reaches the broker, and it executes the run."""
    initiative = portfolio.initiative("Churn radar")
    job = portfolio.job(initiative, "Churn caught")
    due_at = portfolio.make_due(job)

    app.send_task("jobs.tasks.dispatch")

    run = wait_for(
        lambda: Run.objects.filter(job=job, state=RunState.SUCCEEDED).first(),
        "the dispatched run to succeed",
        describe=lambda: runs_of(job),
    )
    assert (run.scheduled_for, run.attempt, run.worker) == (due_at, 1, worker.name)
    assert Run.objects.filter(job=job).count() == 1
    assert Measurement.objects.filter(kpi=job.kpi).count() == 1


def test_jobs_outside_an_active_ops_initiative_are_not_dispatched(
    portfolio: Portfolio, worker: Worker
):
    in_biz = portfolio.initiative("Biz idea", phase=Phase.BIZ)
    in_dev = portfolio.initiative("Dev prototype", phase=Phase.DEV)
    on_hold = portfolio.initiative("Paused model")
    active = portfolio.initiative("Live model")
    biz_job = portfolio.job(in_biz, "Biz KPI")
    dev_job = portfolio.job(in_dev, "Dev KPI")
    held_job = portfolio.job(on_hold, "Held KPI")
    control = portfolio.job(active, "Live KPI")
    on_hold = decide(on_hold, Decision.HOLD, portfolio.pm)
    assert (on_hold.phase, on_hold.status) == (Phase.OPS, Status.ON_HOLD)
    due_at = portfolio.make_due(biz_job, dev_job, held_job, control)

    created = job_services.dispatch_due()

    # The control job proves the dispatcher and the worker work; the worker takes the
    # messages in order, so once its run succeeded nothing else is on its way.
    assert len(created) == 1, runs_of(biz_job, dev_job, held_job, control)
    (run,) = wait_finished(*created)
    assert (run.job_id, run.state) == (control.pk, RunState.SUCCEEDED)
    assert runs_of(biz_job, dev_job, held_job) == []
    assert not Measurement.objects.filter(kpi__in=[biz_job.kpi, dev_job.kpi, held_job.kpi])
    # Not dispatched means not advanced either: they run when the initiative is in Ops again.
    for job in (biz_job, dev_job, held_job):
        job.refresh_from_db()
        assert job.next_run_at == due_at


def test_a_run_queued_before_its_initiative_is_put_on_hold_is_skipped_by_the_worker(
    portfolio: Portfolio, start_worker: Any
):
    initiative = portfolio.initiative("Paused model")
    scheduled_job = portfolio.job(initiative, "Scheduled KPI")
    manual_job = portfolio.job(initiative, "Manual KPI")
    portfolio.make_due(scheduled_job)
    # Both runs are queued and their messages wait in Redis: no worker is running yet.
    (scheduled_id,) = job_services.dispatch_due()
    manual_id = job_services.run_request(job=manual_job, user=portfolio.engineer).pk
    decide(initiative, Decision.HOLD, portfolio.pm)

    start_worker()

    for run in wait_finished(scheduled_id, manual_id):
        assert run.state == RunState.SKIPPED, (run.trigger, run.state, run.error)
        assert "not active in Ops" in run.error
        assert run.attempt == 0 and run.started_at is None and run.value is None
        assert run.finished_at is not None
    assert not Measurement.objects.filter(kpi__in=[scheduled_job.kpi, manual_job.kpi]).exists()


@pytest.mark.parametrize("jobs_count", [20])
def test_two_dispatchers_at_once_create_one_run_per_job_and_moment(
    portfolio: Portfolio, worker: Worker, jobs_count: int
):
    initiative = portfolio.initiative("Portfolio of KPIs")
    jobs = [portfolio.job(initiative, f"KPI {n:02}", JOB_PK) for n in range(jobs_count)]
    due_at = portfolio.make_due(*jobs)

    start = threading.Barrier(2, timeout=20)
    results: dict[str, list[int] | BaseException] = {}

    def dispatcher(name: str) -> None:
        try:
            start.wait()
            results[name] = job_services.dispatch_due()
        except BaseException as error:  # reported below, in the test's thread
            results[name] = error
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=dispatcher, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a dispatcher hangs"
    first, second = results["a"], results["b"]
    assert isinstance(first, list), first
    assert isinstance(second, list), second
    assert not set(first) & set(second), "both dispatchers created the same run"
    created = first + second
    assert len(created) == len(set(created)) == jobs_count

    runs = runs_of(*jobs)
    assert len(runs) == jobs_count
    assert sorted(row["job_id"] for row in runs) == sorted(job.pk for job in jobs)
    assert {row["scheduled_for"] for row in runs} == {due_at}
    assert {row["id"] for row in runs} == set(created)
    assert set(
        Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("next_run_at", flat=True)
    ) == {due_at + dt.timedelta(hours=1)}

    finished = wait_finished(*created)
    for run in finished:
        assert run.state == RunState.SUCCEEDED, run.error
        assert (run.attempt, run.deliveries, run.worker) == (1, 1, worker.name)
        assert run.value == float(run.job_id)  # its own job's number, not another one's
    measurements = Measurement.objects.filter(kpi__job__in=jobs)
    assert measurements.count() == jobs_count
    assert sorted(measurements.values_list("kpi__job", flat=True)) == sorted(j.pk for j in jobs)
    for measurement in measurements.select_related("kpi__job"):
        assert measurement.as_of == due_at
        assert measurement.value == float(measurement.kpi.job.pk)
    assert job_services.dispatch_due() == []
