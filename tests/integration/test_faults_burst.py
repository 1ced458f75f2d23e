"""A burst of 10,000 due jobs (slow: `make faults`). Every job of a portfolio falls due at once
(after a deploy, or when the warehouse's nightly load lands): the dispatcher on the `control`
queue turns them into runs in batches of KPI_DISPATCH_BATCH (1,000), two worker processes on
the `runs` queue execute them, and the reaper keeps running meanwhile. Expected: every job
runs exactly once, one measurement each, no message sent twice, no control message expired
(a backlog of runs cannot hold up the dispatcher, the sweep or the reaper), and the outbox
empty at the end.

The jobs are written with bulk_create (10,000 through the services would take minutes of
setup and test nothing more); the initiative is built through the services as everywhere.
BIZDEVOPS_FAULTS_BURST_JOBS sets the size (default 10,000).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import Job, Run, RunState, ScheduleKind, SourceKind
from kpis.models import KPI
from tests.integration.faults import each_once, tally
from tests.integration.helpers import INTEGRATION, Portfolio, wait_for
from tests.integration.worker_calculations import ANSWER

pytestmark = [*INTEGRATION, pytest.mark.faults]

JOBS = int(os.environ.get("BIZDEVOPS_FAULTS_BURST_JOBS", "10000"))
# What production runs (bizdevops/settings.py defaults): the dispatcher every 5 s, the sweep
# every 2 s, the reaper every 60 s with its 120 s grace.
CONTROL = {
    "KPI_DISPATCH_INTERVAL_SECONDS": "5",
    "OUTBOX_SWEEP_INTERVAL_SECONDS": "2",
    "KPI_REAPER_INTERVAL_SECONDS": "60",
}
EXPIRED = "Discarding revoked task"  # what a worker logs for an expired message


def test_a_burst_of_due_jobs_runs_each_exactly_once_and_no_control_message_expires(
    portfolio: Portfolio, start_worker: Any
):
    initiative = portfolio.initiative("A portfolio at scale")
    due_at = (timezone.now() - dt.timedelta(minutes=1)).replace(microsecond=0)
    kpis = KPI.objects.bulk_create(
        KPI(initiative=initiative, name=f"KPI {n}", created_by=portfolio.pm) for n in range(JOBS)
    )
    jobs = Job.objects.bulk_create(
        Job(
            kpi=kpi,
            created_by=portfolio.engineer,
            schedule_kind=ScheduleKind.INTERVAL,
            interval_seconds=86_400,
            source_kind=SourceKind.PYTHON,
            calculation=ANSWER,
            next_run_at=due_at,
        )
        for kpi in kpis
    )
    started = time.monotonic()

    control = start_worker(beat=True, queues="control", **CONTROL)
    runners = [start_worker(queues="runs") for _ in range(2)]

    def finished() -> bool:
        return (
            not Run.objects.filter(
                job__in=jobs, state__in=[RunState.QUEUED, RunState.RUNNING]
            ).exists()
            and Run.objects.filter(job__in=jobs).count() == JOBS
        )

    wait_for(
        finished,
        f"{JOBS} runs to finish",
        timeout=max(600.0, JOBS * 0.12),
        interval=2.0,
        describe=lambda: tally(jobs=jobs, webhooks=False),
    )
    elapsed = time.monotonic() - started
    time.sleep(10)  # a late duplicate (a resent message) would show up now

    expected = each_once(JOBS)
    got = tally(jobs=jobs, webhooks=False)
    expired = sum(worker.log().count(EXPIRED) for worker in [control, *runners])
    print(f"{JOBS} due jobs: all runs finished after {elapsed:.0f} s; {got}; expired {expired}")
    assert got == expected
    assert expired == 0
    assert control.log().count("jobs.tasks.dispatch[") > 0
