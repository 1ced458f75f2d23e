"""The upkeep of the measurements' partitions and raw-value retention (kpis/partitions.py),
sent by beat every MEASUREMENT_PARTITIONS_INTERVAL_SECONDS on the `control` queue."""

from __future__ import annotations

import logging

from celery import shared_task

from bizdevops.db import retry_on_lost_connection
from kpis import partitions

log = logging.getLogger(__name__)

MAINTAIN_PARTITIONS = "kpis.tasks.maintain_partitions"
# The control queue also carries the dispatcher: one run holds a worker slot at most about
# this long (between two steps; a month's DROP or a batch of DELETE is not cut short), and the
# next run goes on from there. The command has no budget.
BUDGET_SECONDS = 30.0


@shared_task(name=MAINTAIN_PARTITIONS, ignore_result=True, soft_time_limit=600, time_limit=660)
def maintain_partitions() -> str:
    report = retry_on_lost_connection(
        lambda: partitions.partitions_maintain(budget_seconds=BUDGET_SECONDS),
        what="the upkeep of the measurement partitions",
    )
    for problem in report.problems:
        log.warning("Measurement partitions: %s", problem)
    summary = report.summary()
    if report.created or report.dropped or report.deleted or report.moved:
        log.info("Measurement partitions: %s", summary)
    return summary
