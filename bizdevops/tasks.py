"""Development only: the demo warehouse gets new rows every minute (see bizdevops/celery.py)."""

from __future__ import annotations

from celery import shared_task

from bizdevops.demo import warehouse

DEMO_WAREHOUSE_TICK = "bizdevops.tasks.demo_warehouse_tick"


@shared_task(name=DEMO_WAREHOUSE_TICK, ignore_result=True)
def demo_warehouse_tick() -> int:
    return warehouse.tick()
