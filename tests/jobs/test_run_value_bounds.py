"""A job whose source answers a number out of the measurement bounds: the run fails with a
clear message (no retry, no measurement), trial runs included, and no run is left running."""

from __future__ import annotations

import pytest

from jobs import sources
from jobs.models import RunState, Trigger
from jobs.services import job_update, run_execute, run_request
from kpis.models import Measurement
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def huge_job(ops_job, engineer, monkeypatch):
    monkeypatch.setitem(
        sources.CALCULATIONS,
        "tests.huge",
        sources.Calculation("tests.huge", "Huge", lambda job: 1e308),
    )
    return job_update(job=ops_job, user=engineer, calculation="tests.huge")


def test_a_scheduled_run_with_a_value_out_of_range_fails(huge_job):
    run = scheduled_run(huge_job)

    outcome = run_execute(run_id=run.pk)

    assert outcome.state == RunState.FAILED
    assert outcome.retry_in is None
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "from -1e+15 to 1e+15" in run.error
    assert "1e+308" not in run.error  # the value itself is not echoed
    assert run.value is None
    assert not Measurement.objects.exists()


def test_a_trial_run_with_a_value_out_of_range_fails(huge_job, engineer):
    run = run_request(job=huge_job, user=engineer, trigger=Trigger.TRIAL)

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert "from -1e+15 to 1e+15" in run.error


def test_a_sql_source_giving_a_huge_number_fails_the_run(sql_job, engineer):
    job_update(job=sql_job, user=engineer, sql="SELECT 1e300")
    run = scheduled_run(sql_job)

    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert "from -1e+15 to 1e+15" in run.error
    assert not Measurement.objects.exists()
