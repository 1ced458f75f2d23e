from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")

app = Celery("bizdevops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs: object) -> None:
    """Around every task, what Django does around every request: a connection past
    CONN_MAX_AGE, or one that had errors and fails its check, is closed; the others are kept
    (CELERY_DB_REUSE_MAX stops Celery closing them all)."""
    from django.db import close_old_connections

    close_old_connections()


@app.on_after_configure.connect
def beat_schedule(sender: Celery, **kwargs: object) -> None:
    """The dispatcher of KPI jobs (see jobs/services.py `dispatch_due`), the reapers of runs
    and of webhook deliveries, the outbox sweep and the upkeep of the measurements' partitions
    (kpis/partitions.py), all routed to the `control` queue; with DEBUG, the demo warehouse
    gets new rows every minute. A control message that waited longer than
    CONTROL_EXPIRES_SECONDS (and twice its interval) is dropped: the next one does the same
    work. Tasks are named as strings: this module is imported before any app."""
    from django.conf import settings

    def every(seconds: float, task: str) -> dict[str, object]:
        expires = max(settings.CONTROL_EXPIRES_SECONDS, seconds * 2)
        return {"task": task, "schedule": seconds, "options": {"expires": expires}}

    reaper = settings.KPI_REAPER_INTERVAL_SECONDS
    sender.conf.beat_schedule = {
        "dispatch-due-kpi-jobs": every(
            settings.KPI_DISPATCH_INTERVAL_SECONDS, "jobs.tasks.dispatch"
        ),
        "reap-stuck-kpi-runs": every(reaper, "jobs.tasks.reap"),
        "reap-lost-webhook-deliveries": every(reaper, "notifications.tasks.reap_deliveries"),
        "outbox-relay": every(
            settings.OUTBOX_SWEEP_INTERVAL_SECONDS, "bizdevops.tasks.outbox_relay"
        ),
        "maintain-measurement-partitions": every(
            settings.MEASUREMENT_PARTITIONS_INTERVAL_SECONDS, "kpis.tasks.maintain_partitions"
        ),
    }
    if settings.DEBUG:
        sender.conf.beat_schedule["demo-warehouse-tick"] = every(
            60.0, "bizdevops.tasks.demo_warehouse_tick"
        )
