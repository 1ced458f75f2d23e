"""A run's queries on the application's database (issue 12: 13 with BEGIN and COMMIT, two
transactions that each locked the run, before). On PostgreSQL a successful run is three
statements, whether its KPI's status changes or not (an alert adds its own): the claim (one
UPDATE ... RETURNING the run with its job, KPI, initiative and data source; a transaction by
itself), then one transaction of two: one statement locks the KPI and finishes the run
(returning the KPI's row), one round trip upserts the value, refreshes the rollups, sets the
status if it changed and reads the latest value; five with that transaction's BEGIN and
COMMIT. The tests run with real transactions (`transaction=True`), so that no savepoint of
the test's own transaction is counted. The other tests pin down what the short path must
keep: the same refusals as the checked path, the same objects, nothing written twice, the
status of the latest value."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from initiatives.models import Initiative, Phase, Status
from jobs import services, sources
from jobs.models import DataSource, Job, Run, RunState, Trigger
from jobs.services import _runnable, run_execute, run_start, run_succeed
from kpis.models import KPI, Measurement, Origin
from kpis.services import kpi_status_check, measurement_record
from notifications.models import Alert
from tests.jobs.helpers import scheduled_run

# serialized_rollback: the rows data migrations made (roles, gates) come back after the flush.
COMMITTED = pytest.mark.django_db(transaction=True, serialized_rollback=True)
VALUE = 12.0


@pytest.fixture
def constant(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """A Python calculation that answers `value["now"]` and asks the database nothing."""
    value = {"now": VALUE}
    calc = sources.Calculation("tests.constant", "A constant", lambda job: value["now"])
    monkeypatch.setitem(sources.CALCULATIONS, "tests.constant", calc)
    return value


@pytest.fixture
def python_job(ops_job: Job, engineer: Any, constant: dict[str, float]) -> Job:
    return services.job_update(job=ops_job, user=engineer, calculation="tests.constant")


@pytest.fixture
def pg_job(ops_job: Job, engineer: Any, admin_user: Any, pg_scratch: tuple[str, str]) -> Job:
    url, table = pg_scratch
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)
    return services.job_update(
        job=ops_job,
        user=engineer,
        source_kind="sql",
        data_source=source,
        sql=f"SELECT count(*) FROM {table}",  # noqa: S608
    )


TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


@contextlib.contextmanager
def statements(expected: int, transactions: int) -> Iterator[list[str]]:
    """Exactly `expected` round trips besides BEGIN / COMMIT, in `transactions` transactions;
    yields the list that holds their SQL afterwards."""
    sent: list[str] = []
    with CaptureQueriesContext(connection) as captured:
        yield sent
    sqls = [query["sql"] for query in captured.captured_queries]
    control = [sql for sql in sqls if sql in TRANSACTION_CONTROL]
    sent += [sql for sql in sqls if sql not in TRANSACTION_CONTROL]
    assert len(sent) == expected, "\n\n".join(sql[:200] for sql in sent)
    assert control == ["BEGIN", "COMMIT"] * transactions, control


def _second_run(job: Job) -> Run:
    """A due run of a job that has run once already (its KPI has its status: healthy)."""
    first = scheduled_run(job, now=timezone.now() - dt.timedelta(minutes=10))
    assert run_execute(run_id=first.pk).state == RunState.SUCCEEDED
    return scheduled_run(job)


@pytest.mark.postgres
@COMMITTED
def test_a_sql_run_is_three_statements(pg_job):
    run = _second_run(pg_job)

    with statements(3, transactions=1) as sent:
        assert run_execute(run_id=run.pk, worker="w1").state == RunState.SUCCEEDED

    claim, finish, write = sent
    assert "UPDATE" in claim and "SET state = 'running'" in claim
    assert finish.lstrip().startswith("WITH k AS MATERIALIZED") and "FOR UPDATE" in finish
    assert write.lstrip().startswith("INSERT INTO kpis_measurement")
    assert "kpis_rollup" in write and "UPDATE kpis_kpi" not in write  # the status stays

    run.refresh_from_db()
    assert (run.state, run.value, run.attempt, run.worker) == (RunState.SUCCEEDED, 3.0, 1, "w1")
    assert Measurement.objects.get(kpi=pg_job.kpi, as_of=run.scheduled_for).run_id == run.pk


@pytest.mark.postgres
@COMMITTED
def test_a_python_run_is_three_statements(python_job):
    run = _second_run(python_job)

    with statements(3, transactions=1):
        assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    measurement = Measurement.objects.get(kpi=python_job.kpi, as_of=run.scheduled_for)
    assert (measurement.value, measurement.origin, measurement.run_id) == (
        VALUE,
        Origin.RUN,
        run.pk,
    )


@pytest.mark.postgres
@COMMITTED
def test_a_trial_run_is_two_statements_and_writes_no_value(python_job, engineer):
    run = services.run_request(job=python_job, user=engineer, trigger=Trigger.TRIAL)

    with statements(2, transactions=0):
        assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    assert not Measurement.objects.exists()


@pytest.mark.postgres
@COMMITTED
def test_a_first_value_sets_the_status_in_the_same_three_statements(python_job):
    run = scheduled_run(python_job)
    assert KPI.objects.get(pk=python_job.kpi_id).last_health == ""

    with statements(3, transactions=1) as sent:
        assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    assert "UPDATE kpis_kpi SET last_health" in sent[-1]
    assert KPI.objects.get(pk=python_job.kpi_id).last_health == "healthy"
    assert not Alert.objects.exists()  # a first value that is healthy is no change


@pytest.mark.postgres
@COMMITTED
def test_a_status_change_adds_the_compare_and_set_and_one_alert(
    python_job, constant, django_assert_max_num_queries
):
    KPI.objects.filter(pk=python_job.kpi_id).update(
        direction="higher", warning_threshold=10, critical_threshold=5
    )
    run = _second_run(python_job)  # 12: healthy
    constant["now"] = 1.0  # critical
    with django_assert_max_num_queries(20):
        assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    (alert,) = Alert.objects.filter(kind="kpi_status")
    assert (alert.from_status, alert.to_status, alert.value) == ("healthy", "critical", 1.0)
    assert KPI.objects.get(pk=python_job.kpi_id).last_health == "critical"


# The claim: the same refusals as the checked path, which records the skip.


def _combinations() -> list[tuple[str, str, str, bool]]:
    return list(
        itertools.product(
            [Trigger.SCHEDULE, Trigger.MANUAL, Trigger.TRIAL],
            list(Phase),
            list(Status),
            [True, False],
        )
    )


@pytest.mark.django_db
def test_the_claim_starts_exactly_the_runs_the_rules_allow(python_job):
    initiative = python_job.kpi.initiative
    moment = timezone.now() - dt.timedelta(days=1)
    for number, (trigger, phase, status, enabled) in enumerate(_combinations()):
        Initiative.objects.filter(pk=initiative.pk).update(phase=phase, status=status)
        Job.objects.filter(pk=python_job.pk).update(enabled=enabled)
        initiative.refresh_from_db()
        run = Run.objects.create(
            job=python_job, trigger=trigger, scheduled_for=moment + dt.timedelta(seconds=number)
        )
        refusal = _runnable(initiative, trigger)
        if refusal is None and trigger == Trigger.SCHEDULE and not enabled:
            refusal = "The job was disabled."
        case = (trigger, phase, status, enabled)

        claimed = run_start(run_id=run.pk, worker="w")

        run.refresh_from_db()
        if refusal is None:
            assert claimed is not None, case
            assert (run.state, run.attempt, run.worker) == (RunState.RUNNING, 1, "w"), case
        else:
            assert claimed is None, case
            assert (run.state, run.error, run.attempt) == (RunState.SKIPPED, refusal, 0), case


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_claimed_run_comes_with_its_job_kpi_initiative_and_source(
    pg_job, django_assert_num_queries
):
    run = scheduled_run(pg_job)

    with django_assert_num_queries(1):
        claimed = run_start(run_id=run.pk, worker="w")
        assert claimed is not None
        job, kpi = claimed.job, claimed.job.kpi
        initiative, source = kpi.initiative, job.data_source

    def fields(obj: Any) -> dict[str, Any]:
        return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

    assert fields(claimed) == fields(Run.objects.get(pk=run.pk))
    assert fields(job) == fields(Job.objects.get(pk=pg_job.pk))
    assert fields(kpi) == fields(KPI.objects.get(pk=pg_job.kpi_id))
    assert fields(initiative) == fields(Initiative.objects.get(pk=kpi.initiative_id))
    assert source is not None
    assert fields(source) == fields(DataSource.objects.get(pk=pg_job.data_source_id))


@pytest.mark.django_db
def test_a_python_job_is_claimed_without_a_data_source(python_job):
    claimed = run_start(run_id=scheduled_run(python_job).pk, worker="w")

    assert claimed is not None
    assert claimed.job.data_source is None


@pytest.mark.django_db
def test_a_finished_run_is_not_claimed_again(python_job):
    run = scheduled_run(python_job)
    run_execute(run_id=run.pk)

    assert run_start(run_id=run.pk, worker="again") is None
    run.refresh_from_db()
    assert (run.state, run.attempt) == (RunState.SUCCEEDED, 1)


@pytest.mark.django_db
def test_a_missing_run_raises_does_not_exist():
    with pytest.raises(Run.DoesNotExist):
        run_start(run_id=987654, worker="w")


# The result.


@pytest.mark.django_db
def test_a_second_delivery_that_finishes_late_writes_nothing(python_job, constant):
    run = scheduled_run(python_job)
    first = run_start(run_id=run.pk, worker="first")
    assert first is not None
    # Another delivery of the same message claims the run again and finishes it.
    assert run_execute(run_id=run.pk, worker="second").state == RunState.SUCCEEDED

    assert run_succeed(run=first, value=99.0) is False

    run.refresh_from_db()
    assert (run.state, run.value, run.worker, run.attempt) == (
        RunState.SUCCEEDED,
        VALUE,
        "second",
        2,
    )
    assert list(Measurement.objects.values_list("value", flat=True)) == [VALUE]


@pytest.mark.django_db
def test_a_late_run_for_an_older_moment_does_not_change_the_status(python_job, constant):
    KPI.objects.filter(pk=python_job.kpi_id).update(
        direction="higher", warning_threshold=10, critical_threshold=5
    )
    run = scheduled_run(python_job, now=timezone.now() - dt.timedelta(hours=1))
    kpi = python_job.kpi
    measurement_record(kpi=kpi, as_of=timezone.now(), value=1.0, origin=Origin.API)
    kpi_status_check(kpi=kpi)
    assert KPI.objects.get(pk=kpi.pk).last_health == "critical"

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED  # healthy, but older

    assert KPI.objects.get(pk=kpi.pk).last_health == "critical"
    assert Alert.objects.filter(kind="kpi_status").count() == 1


@pytest.mark.django_db
def test_a_late_run_is_judged_on_the_latest_value_with_the_thresholds_of_now(python_job, constant):
    # The latest value was healthy when written; the thresholds changed since. A late run
    # for an older moment judges the status again, on the latest value, as any write does.
    kpi = python_job.kpi
    measurement_record(kpi=kpi, as_of=timezone.now(), value=1.0, origin=Origin.API)
    kpi_status_check(kpi=kpi)
    assert KPI.objects.get(pk=kpi.pk).last_health == "healthy"
    KPI.objects.filter(pk=kpi.pk).update(
        direction="higher", warning_threshold=10, critical_threshold=5
    )
    run = scheduled_run(python_job, now=timezone.now() - dt.timedelta(hours=1))

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED  # 12: healthy, but older

    assert KPI.objects.get(pk=kpi.pk).last_health == "critical"
    (alert,) = Alert.objects.filter(kind="kpi_status")
    assert (alert.from_status, alert.to_status, alert.value) == ("healthy", "critical", 1.0)


@pytest.mark.django_db
def test_a_value_written_again_for_the_same_moment_is_judged_on_its_new_value(python_job, constant):
    KPI.objects.filter(pk=python_job.kpi_id).update(
        direction="higher", warning_threshold=10, critical_threshold=5
    )
    run = scheduled_run(python_job)
    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED  # 12: healthy
    # The same moment again (a run reset by hand and run again), now critical.
    Run.objects.filter(pk=run.pk).update(state=RunState.QUEUED)
    constant["now"] = 1.0

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    assert Measurement.objects.get(kpi=python_job.kpi).value == 1.0
    assert KPI.objects.get(pk=python_job.kpi_id).last_health == "critical"
    assert Alert.objects.filter(kind="kpi_status", to_status="critical").count() == 1
