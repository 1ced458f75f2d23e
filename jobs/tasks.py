"""Celery tasks: doors into the services that own only retries and time limits (the
services send them by name, through the outbox: `bizdevops.outbox`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown, worker_shutdown, worker_shutting_down

from bizdevops import outbox
from bizdevops.db import retry_on_lost_connection
from jobs import services, sources
from jobs.models import Run

log = logging.getLogger(__name__)

DISPATCH = "jobs.tasks.dispatch"
REAP = "jobs.tasks.reap"
RUNS_QUEUE = "runs"


@shared_task(name=DISPATCH, ignore_result=True)
def dispatch() -> int:
    created = retry_on_lost_connection(services.dispatch_due, what="the dispatch")
    if created:
        log.info("Dispatched %d KPI job runs", len(created))
    return len(created)


@shared_task(name=REAP, ignore_result=True)
def reap() -> int:
    waiting = outbox.broker_waiting(RUNS_QUEUE)
    resent = retry_on_lost_connection(
        lambda: services.runs_reap(waiting=waiting), what="the reaper"
    )
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
    # A transient failure queued the run again in the database, with its retry in the outbox.
    return str(outcome.state)


# Graceful shutdown (docs/reliability.md). SIGTERM is a warm shutdown: the runs in hand
# finish. With REMAP_SIGTERM=SIGQUIT (docker-compose.yml) it is a cold one after
# CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT: the runs still in hand are stopped, the broker gets
# their messages back, and these doors put their rows back to queued so that no run is left
# `running`.
@worker_shutting_down.connect
def release_runs_on_cold_shutdown(sender: str, how: str = "", **kwargs: object) -> None:
    """Sent in the worker's main process; on a cold shutdown after the soft wait and after
    the runs were stopped, before the broker gets their messages back. A warm shutdown sends
    it first, while the runs still go on: nothing to release then."""
    if how == "Cold":
        _release(sender)


@worker_shutdown.connect
def release_runs_after_shutdown(sender: Any, **kwargs: object) -> None:
    """After a warm shutdown (never sent after a cold one): a run still `running` here lost
    its pool process (SIGTERM to the whole process group, the OOM killer)."""
    _release(getattr(sender, "hostname", "") or "")


def _release(worker: str) -> None:
    try:
        released = retry_on_lost_connection(
            lambda: services.runs_release(worker=worker), what="the release of runs"
        )
    except Exception:
        # The reaper resends them once they are past their time limit.
        log.exception("Shutting down: could not put the runs of %s back to queued", worker)
        return
    if released:
        log.warning("Shutting down: %d KPI runs back to queued: %s", len(released), released)


@worker_process_shutdown.connect
@worker_shutdown.connect
def close_source_connections(**kwargs: object) -> None:
    """A pool process (prefork) or the worker itself (solo, threads) ends: close its pooled
    data source connections rather than leave the servers to notice the dropped sockets."""
    sources.connections_close()
