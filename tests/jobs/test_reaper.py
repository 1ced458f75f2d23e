from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from bizdevops.models import OutboxMessage
from jobs.models import Run, RunState
from jobs.services import run_execute, run_start, runs_reap
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db

LONG_AGO = dt.timedelta(hours=1)


def _age(run: Run, by: dt.timedelta, **fields) -> None:
    """The run was enqueued `by` ago, and its message left the outbox (the broker took it;
    whether it still has it is what the reaper must judge)."""
    Run.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - by, **fields)
    OutboxMessage.objects.all().delete()


def test_lost_queued_run_is_sent_again(ops_job, django_capture_on_commit_callbacks):
    run = scheduled_run(ops_job)
    assert run.deliveries == 1
    _age(run, LONG_AGO)

    with django_capture_on_commit_callbacks() as callbacks:
        resent = runs_reap()

    assert resent == [run.pk]
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.deliveries == 2
    assert run.state == RunState.QUEUED
    assert run.enqueued_at > timezone.now() - dt.timedelta(minutes=1)


def test_recent_runs_are_left_alone(ops_job, settings, django_capture_on_commit_callbacks):
    run = scheduled_run(ops_job)
    # Past the grace period but not past timeout + grace.
    _age(run, dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS + 5))

    with django_capture_on_commit_callbacks() as callbacks:
        assert runs_reap() == []

    assert callbacks == []
    run.refresh_from_db()
    assert (run.state, run.deliveries) == (RunState.QUEUED, 1)


def test_just_queued_run_is_left_alone(ops_job):
    scheduled_run(ops_job)
    assert runs_reap() == []


def test_queued_run_waiting_for_its_retry_is_left_alone(ops_job):
    run = scheduled_run(ops_job)
    Run.objects.filter(pk=run.pk).update(
        attempt=1, enqueued_at=timezone.now() + dt.timedelta(seconds=30)
    )

    assert runs_reap(now=timezone.now() + dt.timedelta(seconds=10)) == []


@pytest.mark.parametrize("state", [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED])
def test_finished_runs_are_left_alone(ops_job, state):
    run = scheduled_run(ops_job)
    _age(run, LONG_AGO, state=state)

    assert runs_reap() == []
    run.refresh_from_db()
    assert (run.state, run.deliveries) == (state, 1)


def test_stuck_running_run_is_sent_again(ops_job, django_capture_on_commit_callbacks):
    run = scheduled_run(ops_job)
    run_start(run_id=run.pk, worker="died")
    Run.objects.filter(pk=run.pk).update(
        enqueued_at=timezone.now() - LONG_AGO, started_at=timezone.now() - LONG_AGO
    )

    with django_capture_on_commit_callbacks() as callbacks:
        assert runs_reap() == [run.pk]

    assert len(callbacks) == 1
    # The resent message runs it to the end.
    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED
    run.refresh_from_db()
    assert run.attempt == 2


def test_running_run_within_its_time_limit_is_left_alone(ops_job, settings):
    run = scheduled_run(ops_job)
    run_start(run_id=run.pk, worker="busy")
    # Enqueued long ago (it waited in the queue), started just now.
    Run.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - LONG_AGO)

    assert runs_reap() == []


def test_after_max_deliveries_the_run_fails_as_lost(
    ops_job, settings, django_capture_on_commit_callbacks
):
    settings.KPI_RUN_MAX_DELIVERIES = 3
    run = scheduled_run(ops_job)
    resends = 0
    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(10):
            _age(run, LONG_AGO)
            if not runs_reap():
                break
            resends += 1

    assert resends == 2  # deliveries 1 (dispatch) -> 2 -> 3
    assert len(callbacks) == 2
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert run.deliveries == 3
    assert "Lost" in run.error and "3" in run.error
    assert run.finished_at is not None
    assert run_execute(run_id=run.pk).state == RunState.FAILED


def test_default_delivery_limit(ops_job, settings):
    run = scheduled_run(ops_job)
    _age(run, LONG_AGO, deliveries=settings.KPI_RUN_MAX_DELIVERIES)

    assert runs_reap() == []
    run.refresh_from_db()
    assert run.state == RunState.FAILED


def test_reaper_takes_the_jobs_timeout_into_account(ops_job, engineer, settings):
    from jobs.services import job_update

    job_update(job=ops_job, user=engineer, timeout_seconds=3600)
    run = scheduled_run(ops_job)
    _age(run, dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS + 1800))
    assert runs_reap() == []

    _age(run, dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS + 3601))
    assert runs_reap() == [run.pk]


# A queued run that is only waiting is not lost


def test_a_queued_run_whose_message_is_still_in_the_outbox_is_left_alone(ops_job):
    run = scheduled_run(ops_job)
    Run.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - LONG_AGO)
    assert OutboxMessage.objects.filter(args=[run.pk]).exists()  # the broker was away

    assert runs_reap() == []
    run.refresh_from_db()
    assert run.deliveries == 1


def test_a_queued_run_behind_a_backlog_is_left_alone(ops_job):
    run = scheduled_run(ops_job)
    _age(run, LONG_AGO)
    # The job's trial run was taken, but it was enqueued before this one.
    Run.objects.exclude(pk=run.pk).update(enqueued_at=timezone.now() - 2 * LONG_AGO)

    # 5,000 messages wait in the runs queue and no later run has been taken: it waits.
    assert runs_reap(waiting=5000) == []
    assert runs_reap(waiting=None) == []  # the broker cannot tell: the same
    # The queue is empty: its message is gone.
    assert runs_reap(waiting=0) == [run.pk]


def test_a_queued_run_is_lost_when_a_run_enqueued_well_after_it_was_taken(ops_job, settings):
    from tests.jobs.helpers import set_next_run

    run = scheduled_run(ops_job)
    _age(run, LONG_AGO)
    later = scheduled_run(ops_job, now=timezone.now() + dt.timedelta(seconds=1))
    Run.objects.filter(pk=later.pk).update(
        state=RunState.SUCCEEDED,
        enqueued_at=timezone.now()
        - LONG_AGO
        + dt.timedelta(seconds=settings.KPI_RUN_GRACE_SECONDS + 1),
    )
    OutboxMessage.objects.all().delete()
    set_next_run(ops_job, timezone.now() + LONG_AGO)

    assert runs_reap(waiting=5000) == [run.pk]
