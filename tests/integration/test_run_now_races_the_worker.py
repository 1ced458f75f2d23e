"""A "run now" request and the worker starting a run of the same job at the same moment.

run_request locks the initiative first and then inserts its run (whose foreign key makes
PostgreSQL take a KEY SHARE lock on the job row); the worker's run_start must not take the
locks the other way round, or the two deadlock and PostgreSQL aborts one of them.
"""

from __future__ import annotations

from typing import Any

import redis
from django.db import connection, transaction

from initiatives.services import initiative_lock
from jobs import services as job_services
from jobs.models import Run, RunState
from tests.integration.helpers import INTEGRATION, TASK_QUEUE, Portfolio, wait_for

pytestmark = INTEGRATION


def sessions_waiting_for_a_run_lock() -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE %s",
            # (pg_stat_activity cuts long queries: match the start of run_start's SELECT)
            ['SELECT "kpis_run"."id"%'],
        )
        return list(cursor.fetchall())


def test_run_now_while_the_worker_starts_a_run_of_the_same_job_does_not_deadlock(
    portfolio: Portfolio, start_worker: Any, broker: redis.Redis
):
    initiative = portfolio.initiative("Fraud scoring")
    job = portfolio.job(initiative, "Fraud caught live")
    # The trial runs of the Dev → Ops gate ran in this process; drop their messages so that
    # the worker's first message is the run below.
    broker.delete(TASK_QUEUE)
    first = job_services.run_request(job=job, user=portfolio.engineer)

    second: Run | None = None
    refused: Exception | None = None
    try:
        with transaction.atomic():
            # A "run now" request has locked the initiative (run_request's first step) ...
            initiative_lock(initiative)
            # ... when the worker takes the first run and starts it (run_start).
            worker = start_worker()
            # (It waits for the initiative's row lock, or, if it does not need it, goes on.)
            wait_for(
                lambda: (
                    sessions_waiting_for_a_run_lock()
                    or Run.objects.filter(pk=first.pk).exclude(state=RunState.QUEUED).exists()
                ),
                "the worker to start the first run",
                describe=worker.log_tail,
            )
            # The request goes on and inserts its run (the same job).
            second = job_services.run_request(job=job, user=portfolio.engineer)
    except Exception as error:  # noqa: BLE001  (reported below)
        refused = error

    assert refused is None, f"run now failed: {refused!r}"
    assert second is not None
    finished = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]
    wait_for(
        lambda: (
            Run.objects.filter(pk__in=[first.pk, second.pk], state__in=finished).count() == 2
            or "raised unexpected" in worker.log()
        ),
        "both runs to finish",
        describe=lambda: list(
            Run.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "state", "attempt")
        ),
    )
    assert "deadlock detected" not in worker.log()
    assert "raised unexpected" not in worker.log()
    for run in Run.objects.filter(pk__in=[first.pk, second.pk]):
        assert (run.state, run.attempt) == (RunState.SUCCEEDED, 1), run.error
