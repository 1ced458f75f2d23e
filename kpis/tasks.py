"""Celery tasks: doors into the services that own only retries and time limits."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from kpis import services
from kpis.models import Run

log = logging.getLogger(__name__)

# Soft limit: the job's timeout plus time to record the result; the hard limit kills a task
# that ignores the soft one. The reaper resends a run whose worker died.
SOFT_MARGIN_SECONDS = 10
HARD_MARGIN_SECONDS = 30


def enqueue_run(run_id: int, timeout_seconds: int) -> None:
    execute_run.apply_async(
        args=[run_id],
        soft_time_limit=timeout_seconds + SOFT_MARGIN_SECONDS,
        time_limit=timeout_seconds + HARD_MARGIN_SECONDS,
    )


@shared_task(name="kpis.tasks.dispatch", ignore_result=True)
def dispatch() -> int:
    created = services.dispatch_due()
    if created:
        log.info("Dispatched %d KPI job runs", len(created))
    return len(created)


@shared_task(name="kpis.tasks.reap", ignore_result=True)
def reap() -> int:
    resent = services.runs_reap()
    if resent:
        log.warning("Resent %d KPI job runs that were stuck: %s", len(resent), resent)
    return len(resent)


@shared_task(
    bind=True,
    name="kpis.tasks.execute_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def execute_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        outcome = services.run_execute(run_id=run_id, worker=self.request.hostname or "")
    except SoftTimeLimitExceeded:
        run = Run.objects.select_related("job").get(pk=run_id)
        services.run_fail(run=run, error="The run exceeded its time limit.", retry=False)
        return "failed"
    except Run.DoesNotExist:
        log.warning("Run %s does not exist (deleted with its job?)", run_id)
        return "missing"
    if outcome.retry_in is not None:
        # Transient failure (network, connection): the run is queued again in the database,
        # and this message is retried with exponential backoff.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return str(outcome.state)


@shared_task(name="kpis.tasks.demo_warehouse_tick", ignore_result=True)
def demo_warehouse_tick() -> int:
    from kpis import demo

    return demo.tick()
