"""The outbox sweep (on the `control` queue, see bizdevops/celery.py) and, in development,
the demo warehouse's new rows every minute."""

from __future__ import annotations

import logging

from celery import shared_task

from bizdevops import outbox
from bizdevops.db import retry_on_lost_connection
from bizdevops.demo import warehouse

log = logging.getLogger(__name__)

DEMO_WAREHOUSE_TICK = "bizdevops.tasks.demo_warehouse_tick"
OUTBOX_RELAY = "bizdevops.tasks.outbox_relay"


@shared_task(name=OUTBOX_RELAY, ignore_result=True)
def outbox_relay() -> int:
    sent = retry_on_lost_connection(outbox.sweep, what="the outbox sweep")
    if sent:
        log.info("Outbox: sent %d messages", sent)
    return sent


@shared_task(name=DEMO_WAREHOUSE_TICK, ignore_result=True)
def demo_warehouse_tick() -> int:
    return warehouse.tick()
