from __future__ import annotations

import pytest

from jobs.models import Job, RunState, Trigger
from jobs.services import job_register, job_update, run_execute, run_request
from kpis.services import kpi_define
from phases.checks import run_check
from phases.models import Criterion, CriterionKind
from tests.factories import make_initiative, trial_run_every_kpi

pytestmark = pytest.mark.django_db

CHECK = "kpi_jobs_trial_passed"
GOOD_SQL = "SELECT count(*) FROM orders"
FAILING_SQL = "SELECT amount FROM orders WHERE id = 3"  # NULL: the run fails


@pytest.fixture
def dev_kpi(dev_initiative):
    return dev_initiative.kpis.get()


@pytest.fixture
def dev_job(dev_kpi, engineer, sqlite_source) -> Job:
    return job_register(
        kpi=dev_kpi,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=300,
        source_kind="sql",
        data_source=sqlite_source,
        sql=GOOD_SQL,
    )


def _trial(job, user) -> str:
    run = run_request(job=job, user=user, trigger=Trigger.TRIAL)
    run_execute(run_id=run.pk, worker="tests")
    run.refresh_from_db()
    return run.state


def test_check_is_a_criterion_of_the_dev_gate():
    criterion = Criterion.objects.get(code=CHECK)
    assert criterion.check_name == CHECK
    assert criterion.kind == CriterionKind.AUTO
    assert criterion.gate.from_phase == "dev"


def test_false_without_kpis(initiative):
    result = run_check(CHECK, initiative)
    assert result.satisfied is False
    assert result.explanation


def test_false_without_a_job(dev_initiative):
    result = run_check(CHECK, dev_initiative)

    assert result.satisfied is False
    assert "Fraud caught" in result.explanation


def test_false_before_any_trial(dev_job, dev_initiative):
    result = run_check(CHECK, dev_initiative)
    assert result.satisfied is False
    assert "trial" in result.explanation


def test_false_while_the_trial_is_queued(dev_job, dev_initiative, engineer):
    run_request(job=dev_job, user=engineer, trigger=Trigger.TRIAL)
    assert run_check(CHECK, dev_initiative).satisfied is False


def test_true_when_the_last_trial_succeeded(dev_job, dev_initiative, engineer):
    assert _trial(dev_job, engineer) == RunState.SUCCEEDED

    result = run_check(CHECK, dev_initiative)

    assert result.satisfied is True


def test_false_when_the_last_trial_failed(dev_job, dev_initiative, engineer):
    job_update(job=dev_job, user=engineer, sql=FAILING_SQL)
    assert _trial(dev_job, engineer) == RunState.FAILED

    result = run_check(CHECK, dev_initiative)

    assert result.satisfied is False
    assert "Fraud caught" in result.explanation


def test_the_last_trial_counts(dev_job, dev_initiative, engineer):
    assert _trial(dev_job, engineer) == RunState.SUCCEEDED
    job_update(job=dev_job, user=engineer, sql=FAILING_SQL)
    assert _trial(dev_job, engineer) == RunState.FAILED
    assert run_check(CHECK, dev_initiative).satisfied is False

    job_update(job=dev_job, user=engineer, sql=GOOD_SQL)
    assert _trial(dev_job, engineer) == RunState.SUCCEEDED
    assert run_check(CHECK, dev_initiative).satisfied is True


def test_manual_or_scheduled_runs_do_not_count_as_trials(ops_job, ops_initiative, engineer):
    # ops_job's trial (by pass_dev_gate) succeeded; a later failing "run now" does not undo it.
    assert run_check(CHECK, ops_initiative).satisfied is True
    ops_job.runs.filter(trigger=Trigger.TRIAL).update(state=RunState.FAILED)
    assert run_check(CHECK, ops_initiative).satisfied is False

    run = run_request(job=ops_job, user=engineer, trigger=Trigger.MANUAL)
    run_execute(run_id=run.pk)
    assert run_check(CHECK, ops_initiative).satisfied is False


def test_false_when_the_job_is_disabled(dev_job, dev_initiative, engineer):
    assert _trial(dev_job, engineer) == RunState.SUCCEEDED
    job_update(job=dev_job, user=engineer, enabled=False)

    result = run_check(CHECK, dev_initiative)

    assert result.satisfied is False
    assert "no enabled job" in result.explanation.lower()


def test_every_kpi_needs_its_own_successful_trial(dev_job, dev_initiative, pm, engineer):
    assert _trial(dev_job, engineer) == RunState.SUCCEEDED
    second = kpi_define(initiative=dev_initiative, user=pm, name="False alarms")
    assert run_check(CHECK, dev_initiative).satisfied is False

    other = job_register(
        kpi=second,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=300,
        source_kind="python",
        calculation="portfolio.initiatives_in_ops",
    )
    assert run_check(CHECK, dev_initiative).satisfied is False

    assert _trial(other, engineer) == RunState.SUCCEEDED
    assert run_check(CHECK, dev_initiative).satisfied is True


def test_other_initiatives_jobs_do_not_count(ops_initiative):
    other = make_initiative(ops_initiative.accountable, ops_initiative.business_unit, title="B")
    kpi_define(initiative=other, user=other.accountable, name="Fraud caught")

    assert run_check(CHECK, ops_initiative).satisfied is True
    assert run_check(CHECK, other).satisfied is False


def test_the_check_runs_two_queries_whatever_the_number_of_kpis(
    dev_initiative, pm, engineer, django_assert_num_queries
):
    for n in range(5):
        kpi_define(initiative=dev_initiative, user=pm, name=f"Extra {n}")
    trial_run_every_kpi(dev_initiative, user=engineer)

    with django_assert_num_queries(2):
        result = run_check(CHECK, dev_initiative)

    assert result.satisfied, result.explanation
