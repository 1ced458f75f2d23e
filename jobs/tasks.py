"""Celery tasks: doors into the services that own only retries and time limits (the
services send them by name, through `bizdevops.queue`)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from jobs import services
from jobs.models import Run

log = logging.getLogger(__name__)

DISPATCH = "jobs.tasks.dispatch"
REAP = "jobs.tasks.reap"


@shared_task(name=DISPATCH, ignore_result=True)
def dispatch() -> int:
    created = services.dispatch_due()
    if created:
        log.info("Dispatched %d KPI job runs", len(created))
    return len(created)


@shared_task(name=REAP, ignore_result=True)
def reap() -> int:
    resent = services.runs_reap()
    if resent:
        log.warning("Resent %d KPI job runs that were stuck: %s", len(resent), resent)
    return len(resent)


@shared_task(
    bind=True,
    name=services.EXECUTE_RUN,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def execute_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        outcome = services.run_execute(run_id=run_id, worker=self.request.hostname or "")
    except SoftTimeLimitExceeded:
        outcome = services.run_time_out(run_id=run_id)
    except Run.DoesNotExist:
        log.warning("Run %s does not exist (deleted with its job?)", run_id)
        return "missing"
    if outcome.retry_in is not None:
        # Transient failure (network, connection): the run is queued again in the database,
        # and this message is retried with exponential backoff.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return str(outcome.state)
