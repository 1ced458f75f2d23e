from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from django.utils import timezone

from bizdevops.errors import DomainError
from jobs import sources
from jobs.models import Run, RunState, Trigger
from jobs.services import job_update, run_execute, run_request
from kpis.models import Measurement, Origin
from kpis.services import measurement_record
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db


# Success


def test_success_records_one_measurement_as_of_the_scheduled_moment(ops_job):
    run = scheduled_run(ops_job)
    before = timezone.now()

    outcome = run_execute(run_id=run.pk, worker="worker-1@host")

    assert outcome.state == RunState.SUCCEEDED
    assert outcome.retry_in is None
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    # portfolio.initiatives_in_ops: the one initiative of the test is in Ops.
    assert run.value == 1.0
    assert run.attempt == 1
    assert run.error == ""
    assert run.worker == "worker-1@host"
    assert run.started_at is not None and run.finished_at is not None
    assert before <= run.started_at <= run.finished_at
    assert run.duration is not None and run.duration >= 0
    (measurement,) = Measurement.objects.all()
    assert measurement.kpi_id == ops_job.kpi_id
    assert measurement.as_of == run.scheduled_for
    assert measurement.value == 1.0
    assert measurement.origin == Origin.RUN
    assert measurement.run_id == run.pk


def test_sql_run_records_the_query_result(sql_job):
    run = scheduled_run(sql_job)

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.value == 30.5
    assert Measurement.objects.get(kpi=sql_job.kpi).value == 30.5


def test_executing_the_same_run_again_changes_nothing(ops_job):
    run = scheduled_run(ops_job)
    run_execute(run_id=run.pk, worker="first")
    run.refresh_from_db()
    snapshot = (run.state, run.value, run.attempt, run.started_at, run.finished_at, run.worker)
    recorded_at = Measurement.objects.get().recorded_at

    outcome = run_execute(run_id=run.pk, worker="second")

    assert outcome.state == RunState.SUCCEEDED
    run.refresh_from_db()
    assert (
        run.state,
        run.value,
        run.attempt,
        run.started_at,
        run.finished_at,
        run.worker,
    ) == snapshot
    assert Measurement.objects.count() == 1
    assert Measurement.objects.get().recorded_at == recorded_at


def test_each_scheduled_moment_gets_its_own_measurement(ops_job):
    first = scheduled_run(ops_job, now=timezone.now() - dt.timedelta(minutes=10))
    second = scheduled_run(ops_job)
    run_execute(run_id=first.pk)
    run_execute(run_id=second.pk)

    assert list(Measurement.objects.order_by("as_of").values_list("as_of", flat=True)) == [
        first.scheduled_for,
        second.scheduled_for,
    ]


def test_manual_run_records_a_measurement_as_of_its_request(ops_job, engineer):
    run = run_request(job=ops_job, user=engineer)

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    measurement = Measurement.objects.get()
    assert measurement.as_of == run.scheduled_for
    assert measurement.run_id == run.pk


@pytest.mark.parametrize("phase", ["dev", "ops"])
def test_trial_runs_write_no_measurement(request, phase, engineer):
    initiative = request.getfixturevalue(f"{phase}_initiative")
    from jobs.models import Job
    from jobs.services import job_register

    kpi = initiative.kpis.get()
    job = Job.objects.filter(kpi=kpi).first() or job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=60,
        source_kind="python",
        calculation="portfolio.initiatives_in_ops",
    )
    run = run_request(job=job, user=engineer, trigger=Trigger.TRIAL)

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert run.value is not None
    assert not Measurement.objects.filter(kpi=kpi).exists()


# Permanent failures


def test_source_error_fails_the_run_without_retry(sql_job, engineer):
    job_update(job=sql_job, user=engineer, sql="SELECT amount FROM orders WHERE id = 3")
    run = scheduled_run(sql_job)

    outcome = run_execute(run_id=run.pk)

    assert outcome.state == RunState.FAILED
    assert outcome.retry_in is None
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert run.attempt == 1
    assert "no value (NULL)" in run.error and "not a number" in run.error
    assert run.value is None
    assert run.finished_at is not None
    assert not Measurement.objects.exists()
    # A redelivered message does not run it again.
    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert run.attempt == 1


def test_missing_calculation_fails_the_run(ops_job):
    type(ops_job).objects.filter(pk=ops_job.pk).update(calculation="no.such.calculation")
    run = scheduled_run(ops_job)

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert "no.such.calculation" in run.error


def test_calculation_returning_not_a_number_fails_the_run(ops_job, engineer, monkeypatch):
    monkeypatch.setitem(
        sources.CALCULATIONS,
        "tests.nan",
        sources.Calculation("tests.nan", "NaN", lambda job: float("nan")),
    )
    job_update(job=ops_job, user=engineer, calculation="tests.nan")
    run = scheduled_run(ops_job)

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert "not a finite number" in run.error
    assert not Measurement.objects.exists()


def test_unexpected_error_in_a_calculation_does_not_leave_the_run_running(
    ops_job, engineer, monkeypatch
):
    # A bug in a registered calculation (any exception that is not a SourceError) must end
    # the run with its error; otherwise the run stays 'running' with no error until the
    # reaper resends it and re-runs the broken code, ending as "Lost" after N deliveries.
    def explode(job):
        raise ZeroDivisionError("division by zero in the calculation")

    monkeypatch.setitem(
        sources.CALCULATIONS, "tests.explode", sources.Calculation("tests.explode", "Boom", explode)
    )
    job_update(job=ops_job, user=engineer, calculation="tests.explode")
    run = scheduled_run(ops_job)

    with contextlib.suppress(ZeroDivisionError):
        run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == RunState.FAILED, f"run left {run.state!r} with error {run.error!r}"
    assert "division by zero" in run.error


# Transient failures and retries


def test_transient_error_requeues_with_backoff_then_fails(ops_job, engineer, unreachable_source):
    job_update(
        job=ops_job,
        user=engineer,
        source_kind="sql",
        data_source=unreachable_source,
        sql="SELECT 1",
        max_retries=2,
        timeout_seconds=2,
    )
    run = scheduled_run(ops_job)

    first = run_execute(run_id=run.pk)
    assert first.state == RunState.QUEUED
    run.refresh_from_db()
    assert (run.state, run.attempt) == (RunState.QUEUED, 1)
    assert run.error.startswith("Attempt 1 failed: ")
    assert "connect" in run.error.lower()
    assert run.finished_at is None
    assert run.enqueued_at > timezone.now()  # not picked up by the reaper before the retry

    second = run_execute(run_id=run.pk)
    assert second.state == RunState.QUEUED
    assert second.retry_in > first.retry_in > 0
    run.refresh_from_db()
    assert (run.state, run.attempt) == (RunState.QUEUED, 2)

    last = run_execute(run_id=run.pk)
    assert last.state == RunState.FAILED
    assert last.retry_in is None
    run.refresh_from_db()
    assert (run.state, run.attempt) == (RunState.FAILED, 3)
    assert not run.error.startswith("Attempt")
    assert "connect" in run.error.lower()
    assert run.finished_at is not None
    assert not Measurement.objects.exists()

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert run.attempt == 3


def test_no_retries_means_the_first_transient_error_fails(ops_job, engineer, unreachable_source):
    job_update(
        job=ops_job,
        user=engineer,
        source_kind="sql",
        data_source=unreachable_source,
        sql="SELECT 1",
        max_retries=0,
    )
    run = scheduled_run(ops_job)

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert run.attempt == 1


def test_retry_succeeds_after_a_transient_error(ops_job, engineer, monkeypatch):
    calls = []

    def flaky(job):
        calls.append(job.pk)
        if len(calls) == 1:
            raise sources.TransientSourceError("warehouse restarting")
        return 7.0

    monkeypatch.setitem(
        sources.CALCULATIONS, "tests.flaky", sources.Calculation("tests.flaky", "Flaky", flaky)
    )
    job_update(job=ops_job, user=engineer, calculation="tests.flaky")
    run = scheduled_run(ops_job)

    assert run_execute(run_id=run.pk).state == RunState.QUEUED
    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    run.refresh_from_db()
    assert (run.state, run.attempt, run.value, run.error) == (RunState.SUCCEEDED, 2, 7.0, "")
    measurement = Measurement.objects.get()
    assert (measurement.value, measurement.as_of) == (7.0, run.scheduled_for)


# measurement_record


def test_measurement_record_is_an_upsert(ops_kpi):
    as_of = timezone.now().replace(microsecond=0)

    first = measurement_record(kpi=ops_kpi, as_of=as_of, value=1.5, origin=Origin.API)
    second = measurement_record(kpi=ops_kpi, as_of=as_of, value=2.5, origin=Origin.API)

    assert Measurement.objects.filter(kpi=ops_kpi).count() == 1
    assert first.pk == second.pk
    stored = Measurement.objects.get(kpi=ops_kpi)
    assert stored.value == 2.5
    assert stored.as_of == as_of


def test_measurement_record_same_instant_in_another_zone_is_the_same_row(ops_kpi):
    from zoneinfo import ZoneInfo

    as_of = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)  # in the past: no future values
    measurement_record(kpi=ops_kpi, as_of=as_of, value=1.0, origin=Origin.API)
    measurement_record(
        kpi=ops_kpi,
        as_of=as_of.astimezone(ZoneInfo("Europe/Berlin")),
        value=3.0,
        origin=Origin.API,
    )

    assert list(Measurement.objects.values_list("value", flat=True)) == [3.0]


def test_measurement_record_upsert_updates_origin_and_run(ops_job):
    run = scheduled_run(ops_job)
    measurement_record(kpi=ops_job.kpi, as_of=run.scheduled_for, value=1.0, origin=Origin.API)

    measurement_record(
        kpi=ops_job.kpi, as_of=run.scheduled_for, value=4.0, origin=Origin.RUN, run_id=run.pk
    )

    stored = Measurement.objects.get()
    assert (stored.value, stored.origin, stored.run_id) == (4.0, Origin.RUN, run.pk)


def test_measurement_record_different_instants_are_different_rows(ops_kpi):
    as_of = timezone.now()
    measurement_record(kpi=ops_kpi, as_of=as_of, value=1.0, origin=Origin.API)
    measurement_record(
        kpi=ops_kpi, as_of=as_of + dt.timedelta(seconds=1), value=1.0, origin=Origin.API
    )

    assert Measurement.objects.count() == 2


def test_measurement_record_refuses_naive_datetimes(ops_kpi):
    with pytest.raises(DomainError) as excinfo:
        measurement_record(
            kpi=ops_kpi,
            as_of=dt.datetime(2030, 1, 1, 12, 0),  # noqa: DTZ001
            value=1.0,
            origin=Origin.API,
        )

    assert excinfo.value.field == "as_of"
    assert not Measurement.objects.exists()


def test_run_rows_are_unique_per_job_and_moment(ops_job):
    from django.db import IntegrityError, transaction

    moment = timezone.now()
    Run.objects.create(job=ops_job, scheduled_for=moment)
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(job=ops_job, scheduled_for=moment, trigger=Trigger.MANUAL)
