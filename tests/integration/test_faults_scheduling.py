"""Faults of the scheduler, with real `celery beat` and `celery worker` processes.

- Two beats (a second one started by mistake, or during a rolling deploy): both send the
  dispatcher every second to two workers, so two dispatchers really run at once. Expected:
  every due job runs exactly once per due moment, no moment skipped, none twice.
- Beat down for an hour: a 60 s job (and an every-minute cron job) whose next run is an hour
  in the past. Expected: when beat is back, exactly one catch-up run each, as of the latest
  missed moment, and their next run moves past now.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from django.utils import timezone

from jobs.models import Job, Run, RunState
from kpis.models import Measurement
from tests.integration.faults import each_once, sent_count, tally
from tests.integration.helpers import INTEGRATION, Portfolio, wait_for
from tests.integration.worker_calculations import JOB_PK

pytestmark = INTEGRATION

DISPATCH = "dispatch-due-kpi-jobs"
TWO_BEATS_SECONDS = float(os.environ.get("BIZDEVOPS_TEST_TWO_BEATS_SECONDS", "25"))
INTERVAL = 10  # seconds, the shortest interval a job may have
FAST_BEAT = {"KPI_DISPATCH_INTERVAL_SECONDS": "1", "OUTBOX_SWEEP_INTERVAL_SECONDS": "1"}
FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]


def wait_all_finished(jobs: list[Job]) -> None:
    wait_for(
        lambda: not Run.objects.filter(job__in=jobs).exclude(state__in=FINISHED).exists(),
        "every run to finish",
        describe=lambda: list(
            Run.objects.filter(job__in=jobs)
            .exclude(state__in=FINISHED)
            .values_list("pk", "job_id", "scheduled_for", "state")
        ),
    )


def moments(job: Job) -> list[dt.datetime]:
    return list(
        Run.objects.filter(job=job)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def test_two_beats_run_each_due_job_exactly_once_per_due_moment(
    portfolio: Portfolio, start_worker: Any, start_beat: Any
):
    initiative = portfolio.initiative("Portfolio of KPIs")
    jobs = [
        portfolio.job(initiative, f"KPI {n}", JOB_PK, interval_seconds=INTERVAL) for n in range(5)
    ]
    portfolio.make_due(*jobs, at=timezone.now() + dt.timedelta(days=1))  # not before we say
    start_worker()
    start_worker()  # two dispatchers at once need two workers
    beats = [start_beat(**FAST_BEAT), start_beat(**FAST_BEAT)]
    first = portfolio.make_due(*jobs, at=timezone.now().replace(microsecond=0))

    time.sleep(TWO_BEATS_SECONDS)
    for beat in beats:
        assert beat.alive, beat.log_tail()
        beat.stop()
    wait_all_finished(jobs)

    sends = [sent_count(beat.log(), DISPATCH) for beat in beats]
    # Both beats were sending the dispatcher all along (else this tests one beat).
    assert min(sends) >= TWO_BEATS_SECONDS / 2, sends
    expected_moments = {}
    for job in jobs:
        job.refresh_from_db()
        assert job.next_run_at is not None
        count = int((job.next_run_at - first) / dt.timedelta(seconds=INTERVAL))
        expected_moments[job.pk] = [
            first + dt.timedelta(seconds=INTERVAL * k) for k in range(count)
        ]
    got_moments = {job.pk: moments(job) for job in jobs}
    assert got_moments == expected_moments  # one run per moment: none skipped, none twice
    expected_runs = sum(len(m) for m in expected_moments.values())
    assert expected_runs >= len(jobs) * int(TWO_BEATS_SECONDS // INTERVAL)

    got = tally(jobs=jobs)
    expected = each_once(expected_runs, deliveries=0)
    print(f"\ntwo beats for {TWO_BEATS_SECONDS:g} s sent the dispatcher {sends} times")
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    for measurement in Measurement.objects.filter(kpi__job__in=jobs).select_related("kpi__job"):
        assert measurement.value == float(measurement.kpi.job.pk)


def test_after_beat_was_down_for_an_hour_each_job_runs_once_and_moves_past_now(
    portfolio: Portfolio, start_worker: Any, start_beat: Any
):
    initiative = portfolio.initiative("Churn radar")
    every_minute = portfolio.job(initiative, "Interval KPI", interval_seconds=60)
    cron = portfolio.job(
        initiative, "Cron KPI", schedule_kind="cron", cron="* * * * *", interval_seconds=None
    )
    jobs = [every_minute, cron]
    portfolio.make_due(*jobs, at=timezone.now() + dt.timedelta(days=1))  # while beat is up
    start_worker()
    beat = start_beat(**FAST_BEAT)
    wait_for(lambda: sent_count(beat.log(), DISPATCH) >= 1, "beat to send the dispatcher")
    beat.stop()

    # Beat was down for an hour: their next runs are an hour in the past (60 missed moments
    # each). The interval job's latest missed moment is 5 s ago, so its next one is 55 s away
    # (after this test); the cron job's is at the last full minute.
    down_until = timezone.now().replace(microsecond=0)
    Job.objects.filter(pk=every_minute.pk).update(
        next_run_at=down_until - dt.timedelta(hours=1, seconds=5)
    )
    Job.objects.filter(pk=cron.pk).update(
        next_run_at=down_until.replace(second=0) - dt.timedelta(hours=1)
    )
    assert not Run.objects.filter(job__in=jobs).exists()

    beat = start_beat(name=beat.name, **FAST_BEAT)  # the same beat, on its schedule file
    wait_for(
        lambda: Run.objects.filter(job__in=jobs).count() >= 2,
        "the catch-up runs",
        describe=lambda: list(Run.objects.filter(job__in=jobs).values_list("job_id", "state")),
    )
    sent_at_catch_up = sent_count(beat.log(), DISPATCH)
    wait_for(
        lambda: sent_count(beat.log(), DISPATCH) >= sent_at_catch_up + 3,
        "beat to send the dispatcher three more times",
        describe=beat.log_tail,
    )
    beat.stop()
    wait_all_finished(jobs)

    # The interval job: one run, as of its latest missed moment, and then 55 s to the next.
    (run,) = Run.objects.filter(job=every_minute)
    assert run.scheduled_for == down_until - dt.timedelta(seconds=5)
    every_minute.refresh_from_db()
    assert every_minute.next_run_at == run.scheduled_for + dt.timedelta(seconds=60)
    assert every_minute.next_run_at > run.created_at
    # The cron job: one catch-up run as of the last full minute before beat came back, and
    # (should a minute have turned during the test) one run per minute after it, no more.
    cron_runs = list(Run.objects.filter(job=cron).order_by("scheduled_for"))
    catch_up = cron_runs[0]
    assert catch_up.scheduled_for.second == catch_up.scheduled_for.microsecond == 0
    assert catch_up.created_at - dt.timedelta(minutes=1) < catch_up.scheduled_for
    assert catch_up.scheduled_for <= catch_up.created_at
    assert [r.scheduled_for for r in cron_runs] == [
        catch_up.scheduled_for + dt.timedelta(minutes=k) for k in range(len(cron_runs))
    ]
    assert len(cron_runs) <= 2
    cron.refresh_from_db()
    assert cron.next_run_at == cron_runs[-1].scheduled_for + dt.timedelta(minutes=1)
    assert cron.next_run_at > catch_up.created_at

    expected_runs = 1 + len(cron_runs)
    got = tally(jobs=jobs)
    expected = each_once(expected_runs, deliveries=0)
    print(f"\nbeat down an hour: cron runs {[r.scheduled_for.isoformat() for r in cron_runs]}")
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
