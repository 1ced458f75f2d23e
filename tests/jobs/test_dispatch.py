from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from initiatives.models import Phase, Status, TeamRole
from initiatives.services import member_add
from jobs.models import Run, RunState, Trigger
from jobs.services import dispatch_due, job_register, job_update, run_execute
from kpis.models import Measurement
from kpis.services import kpi_define
from phases.models import Decision
from tests.factories import decide, make_initiative
from tests.jobs.helpers import schedule_runs, set_next_run

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)


def _register(kpi, user, **values):
    values = {
        "schedule_kind": "interval",
        "interval_seconds": 60,
        "source_kind": "python",
        "calculation": "portfolio.initiatives_in_ops",
    } | values
    return job_register(kpi=kpi, user=user, **values)


# Which jobs are dispatched


def test_due_job_of_an_active_ops_initiative_gets_one_queued_run(
    ops_job, django_capture_on_commit_callbacks
):
    now = timezone.now()
    due_at = now - SECOND
    set_next_run(ops_job, due_at)

    with django_capture_on_commit_callbacks() as callbacks:
        created = dispatch_due(now=now)

    assert len(created) == 1
    assert len(callbacks) == 1
    run = Run.objects.get(pk=created[0])
    assert run.job_id == ops_job.pk
    assert run.trigger == Trigger.SCHEDULE
    assert run.state == RunState.QUEUED
    assert run.scheduled_for == due_at
    assert run.attempt == 0
    assert run.deliveries == 1
    assert run.enqueued_at is not None
    assert run.requested_by is None
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == due_at + dt.timedelta(seconds=300)


def test_job_due_exactly_now_is_dispatched(ops_job):
    now = timezone.now()
    set_next_run(ops_job, now)

    assert len(dispatch_due(now=now)) == 1


def test_job_not_yet_due_is_left_alone(ops_job, django_capture_on_commit_callbacks):
    now = timezone.now()
    set_next_run(ops_job, now + SECOND)

    with django_capture_on_commit_callbacks() as callbacks:
        assert dispatch_due(now=now) == []

    assert callbacks == []
    assert schedule_runs(ops_job) == []
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == now + SECOND


def test_disabled_job_is_not_dispatched(ops_job, engineer, django_capture_on_commit_callbacks):
    job_update(job=ops_job, user=engineer, enabled=False)
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)

    with django_capture_on_commit_callbacks() as callbacks:
        assert dispatch_due(now=now) == []

    assert callbacks == []
    assert schedule_runs(ops_job) == []


def test_job_without_next_run_is_not_dispatched(ops_job):
    ops_job.__class__.objects.filter(pk=ops_job.pk).update(next_run_at=None)

    assert dispatch_due(now=timezone.now()) == []


def test_every_due_job_gets_its_own_run(
    ops_initiative, ops_job, pm, engineer, django_capture_on_commit_callbacks
):
    second = _register(kpi_define(initiative=ops_initiative, user=pm, name="Alerts"), engineer)
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    set_next_run(second, now - 2 * SECOND)

    with django_capture_on_commit_callbacks() as callbacks:
        created = dispatch_due(now=now)

    assert len(created) == 2
    assert len(callbacks) == 2
    assert {Run.objects.get(pk=pk).job_id for pk in created} == {ops_job.pk, second.pk}


def test_job_registered_in_biz_is_not_dispatched(
    ready_initiative, engineer, django_capture_on_commit_callbacks
):
    # The engineer is on the team in Biz (pass_biz_gate) and may register a job already.
    kpi = ready_initiative.kpis.get()
    job = _register(kpi, engineer)
    assert ready_initiative.phase == Phase.BIZ
    set_next_run(job, timezone.now() - dt.timedelta(hours=1))

    with django_capture_on_commit_callbacks() as callbacks:
        assert dispatch_due(now=timezone.now()) == []

    assert callbacks == []
    assert not job.runs.exists()


def test_job_of_a_dev_initiative_is_not_dispatched(dev_initiative, engineer):
    job = _register(dev_initiative.kpis.get(), engineer)
    set_next_run(job, timezone.now() - dt.timedelta(hours=1))

    assert dispatch_due(now=timezone.now()) == []
    assert not job.runs.exists()


@pytest.mark.parametrize(
    ("decisions", "phase", "status"),
    [
        ([Decision.HOLD], Phase.OPS, Status.ON_HOLD),
        ([Decision.KILL], Phase.OPS, Status.CANCELLED),
        ([Decision.HOLD, Decision.KILL], Phase.OPS, Status.CANCELLED),
        ([Decision.RETIRE], Phase.OPS, Status.RETIRED),
        ([Decision.RECYCLE], Phase.DEV, Status.ACTIVE),
        ([Decision.HOLD, Decision.RECYCLE], Phase.DEV, Status.ACTIVE),
    ],
)
def test_leaving_ops_stops_dispatch_at_once(
    ops_initiative, ops_job, pm, decisions, phase, status, django_capture_on_commit_callbacks
):
    now = timezone.now()
    due_at = now - SECOND
    set_next_run(ops_job, due_at)
    for decision in decisions:
        initiative = decide(ops_initiative, decision, pm)
    assert (initiative.phase, initiative.status) == (phase, status)

    with django_capture_on_commit_callbacks() as callbacks:
        assert dispatch_due(now=now) == []

    assert callbacks == []
    assert schedule_runs(ops_job) == []
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == due_at


def test_resuming_starts_dispatch_again(ops_initiative, ops_job, pm):
    decide(ops_initiative, Decision.HOLD, pm)
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    assert dispatch_due(now=now) == []

    decide(ops_initiative, Decision.RESUME, pm)

    created = dispatch_due(now=now)
    assert len(created) == 1
    assert Run.objects.get(pk=created[0]).job_id == ops_job.pk


def test_dispatch_is_gated_per_initiative(ops_initiative, ops_job, engineer):
    # Same moment, two initiatives: only the one in Ops gets a run; the other is in Biz.
    other = make_initiative(ops_initiative.accountable, ops_initiative.business_unit, title="B")
    member_add(
        initiative=other, member=engineer, role=TeamRole.DATA_ENGINEER, user=other.accountable
    )
    other_job = _register(
        kpi_define(initiative=other, user=other.accountable, name="Other"), engineer
    )
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    set_next_run(other_job, now - SECOND)

    created = dispatch_due(now=now)

    assert [Run.objects.get(pk=pk).job_id for pk in created] == [ops_job.pk]
    assert not other_job.runs.exists()


# Skipping a queued run when the initiative leaves Ops


@pytest.mark.parametrize(
    "decision", [Decision.HOLD, Decision.KILL, Decision.RETIRE, Decision.RECYCLE]
)
def test_queued_run_is_skipped_when_the_initiative_left_ops(ops_initiative, ops_job, pm, decision):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    (run_id,) = dispatch_due(now=now)
    decide(ops_initiative, decision, pm)

    outcome = run_execute(run_id=run_id, worker="w1")

    assert outcome.state == RunState.SKIPPED
    run = Run.objects.get(pk=run_id)
    assert run.state == RunState.SKIPPED
    assert "not active in Ops" in run.error
    assert run.attempt == 0
    assert run.value is None
    assert run.finished_at is not None
    assert not Measurement.objects.filter(kpi=ops_job.kpi).exists()


def test_skipped_run_stays_skipped_after_resume(ops_initiative, ops_job, pm):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    (run_id,) = dispatch_due(now=now)
    decide(ops_initiative, Decision.HOLD, pm)
    run_execute(run_id=run_id)
    decide(ops_initiative, Decision.RESUME, pm)

    assert run_execute(run_id=run_id).state == RunState.SKIPPED
    assert Run.objects.get(pk=run_id).state == RunState.SKIPPED
    assert not Measurement.objects.exists()


def test_queued_run_of_a_job_disabled_meanwhile_is_skipped(ops_job, engineer):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    (run_id,) = dispatch_due(now=now)
    job_update(job=ops_job, user=engineer, enabled=False)

    assert run_execute(run_id=run_id).state == RunState.SKIPPED
    run = Run.objects.get(pk=run_id)
    assert "disabled" in run.error
    assert not Measurement.objects.exists()


# No duplicates, catch-up and advancing


def test_dispatching_twice_for_the_same_moment_makes_one_run(
    ops_job, django_capture_on_commit_callbacks
):
    now = timezone.now()
    set_next_run(ops_job, now - SECOND)

    with django_capture_on_commit_callbacks() as callbacks:
        first = dispatch_due(now=now)
        second = dispatch_due(now=now)

    assert len(first) == 1
    assert second == []
    assert len(callbacks) == 1
    assert len(schedule_runs(ops_job)) == 1


def test_existing_run_for_the_moment_is_not_duplicated(ops_job, django_capture_on_commit_callbacks):
    # Another dispatcher created the run but the job row still shows the old next_run_at.
    now = timezone.now()
    due_at = now - SECOND
    set_next_run(ops_job, due_at)
    Run.objects.create(job=ops_job, scheduled_for=due_at, trigger=Trigger.SCHEDULE)

    with django_capture_on_commit_callbacks() as callbacks:
        assert dispatch_due(now=now) == []

    assert callbacks == []
    assert len(schedule_runs(ops_job)) == 1
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == due_at + dt.timedelta(seconds=300)


def test_missed_fire_times_give_one_catch_up_run(ops_job, django_capture_on_commit_callbacks):
    now = timezone.now()
    long_ago = now - 10 * dt.timedelta(seconds=300)
    set_next_run(ops_job, long_ago)

    with django_capture_on_commit_callbacks() as callbacks:
        created = dispatch_due(now=now)
        again = dispatch_due(now=now)

    assert len(created) == 1
    assert again == []
    assert len(callbacks) == 1
    (run,) = schedule_runs(ops_job)
    # The one catch-up run is dated at the latest missed fire time, not the oldest: its
    # value is computed now.
    assert run.scheduled_for == long_ago + 10 * dt.timedelta(seconds=300)
    ops_job.refresh_from_db()
    assert ops_job.next_run_at > now
    assert ops_job.next_run_at == now + dt.timedelta(seconds=300)


def test_missed_cron_fire_times_give_one_catch_up_run(ops_job, engineer):
    job_update(job=ops_job, user=engineer, schedule_kind="cron", cron="*/15 * * * *")
    now = dt.datetime(2030, 5, 1, 12, 7, tzinfo=dt.UTC)
    set_next_run(ops_job, dt.datetime(2030, 5, 1, 9, 0, tzinfo=dt.UTC))

    assert len(dispatch_due(now=now)) == 1
    assert len(dispatch_due(now=now)) == 0

    (run,) = schedule_runs(ops_job)
    assert run.scheduled_for == dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == dt.datetime(2030, 5, 1, 12, 15, tzinfo=dt.UTC)


def test_next_run_advances_by_the_interval(ops_job):
    start = timezone.now()
    set_next_run(ops_job, start)
    moments = []
    for step in range(3):
        now = start + dt.timedelta(seconds=300 * step)
        assert len(dispatch_due(now=now)) == 1
        ops_job.refresh_from_db()
        moments.append(ops_job.next_run_at)

    assert moments == [start + dt.timedelta(seconds=300 * n) for n in (1, 2, 3)]
    assert [r.scheduled_for for r in schedule_runs(ops_job)] == [
        start + dt.timedelta(seconds=300 * n) for n in (0, 1, 2)
    ]


def test_next_run_advances_by_the_cron_expression(ops_job, engineer):
    job_update(job=ops_job, user=engineer, schedule_kind="cron", cron="0 */6 * * *")
    set_next_run(ops_job, dt.datetime(2030, 5, 1, 6, 0, tzinfo=dt.UTC))

    dispatch_due(now=dt.datetime(2030, 5, 1, 6, 0, 3, tzinfo=dt.UTC))
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)

    dispatch_due(now=dt.datetime(2030, 5, 1, 12, 0, 1, tzinfo=dt.UTC))
    ops_job.refresh_from_db()
    assert ops_job.next_run_at == dt.datetime(2030, 5, 1, 18, 0, tzinfo=dt.UTC)
    assert [r.scheduled_for for r in schedule_runs(ops_job)] == [
        dt.datetime(2030, 5, 1, 6, 0, tzinfo=dt.UTC),
        dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC),
    ]


def test_cron_dispatch_follows_the_project_time_zone(settings, ops_job, engineer):
    settings.TIME_ZONE = "Europe/Berlin"
    job_update(job=ops_job, user=engineer, schedule_kind="cron", cron="0 9 * * *")
    # 09:00 in Berlin in July is 07:00 UTC.
    set_next_run(ops_job, dt.datetime(2030, 7, 1, 7, 0, tzinfo=dt.UTC))

    dispatch_due(now=dt.datetime(2030, 7, 1, 7, 0, 1, tzinfo=dt.UTC))

    ops_job.refresh_from_db()
    assert ops_job.next_run_at == dt.datetime(2030, 7, 2, 7, 0, tzinfo=dt.UTC)


def test_a_spent_budget_leaves_the_next_batch_to_the_next_call(
    ops_initiative, ops_job, pm, engineer
):
    second = _register(kpi_define(initiative=ops_initiative, user=pm, name="Alerts"), engineer)
    now = timezone.now()
    set_next_run(ops_job, now - 2 * SECOND)
    set_next_run(second, now - SECOND)

    # The budget is checked between batches: a spent one still lets the first batch through.
    first = dispatch_due(now=now, batch=1, budget=0)
    assert [Run.objects.get(pk=pk).job_id for pk in first] == [ops_job.pk]
    rest = dispatch_due(now=now, batch=1, budget=0)
    assert [Run.objects.get(pk=pk).job_id for pk in rest] == [second.pk]


# A batch is a constant number of queries


def _due_jobs(ops_initiative, pm, engineer, count: int, at: dt.datetime) -> list:
    from jobs.models import Job

    jobs = []
    for n in range(count):
        kpi = kpi_define(initiative=ops_initiative, user=pm, name=f"Batch KPI {n}")
        jobs.append(_register(kpi, engineer))
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(next_run_at=at)
    return jobs


def test_a_dispatch_runs_the_same_queries_for_one_due_job_as_for_twenty(
    ops_initiative, ops_job, pm, engineer
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    set_next_run(ops_job, now - SECOND)
    with CaptureQueriesContext(connection) as one:
        assert len(dispatch_due(now=now)) == 1

    later = now + dt.timedelta(hours=2)
    _due_jobs(ops_initiative, pm, engineer, 20, later - SECOND)
    set_next_run(ops_job, later + dt.timedelta(hours=1))
    with CaptureQueriesContext(connection) as twenty:
        assert len(dispatch_due(now=later)) == 20

    # Claim, insert runs (ON CONFLICT DO NOTHING), update jobs, insert outbox rows (and the
    # savepoint pair of the transaction inside the test's): see test_dispatch_batches.py.
    # Before #12: 7 (the existing runs read first); before #11: about 6 per job.
    assert len(twenty) == len(one)
    assert len(one) == 6, [query["sql"][:80] for query in one.captured_queries]
