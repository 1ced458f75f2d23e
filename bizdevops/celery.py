from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")

app = Celery("bizdevops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def beat_schedule(sender: Celery, **kwargs: object) -> None:
    """One dispatcher entry for every KPI job (see jobs/services.py `dispatch_due`) and the
    reaper; with DEBUG, the demo warehouse gets new rows every minute. Tasks are named as
    strings: this module is imported before any app."""
    from django.conf import settings

    sender.conf.beat_schedule = {
        "dispatch-due-kpi-jobs": {
            "task": "jobs.tasks.dispatch",
            "schedule": settings.KPI_DISPATCH_INTERVAL_SECONDS,
            "options": {"expires": settings.KPI_DISPATCH_INTERVAL_SECONDS * 2},
        },
        "reap-stuck-kpi-runs": {
            "task": "jobs.tasks.reap",
            "schedule": settings.KPI_REAPER_INTERVAL_SECONDS,
            "options": {"expires": settings.KPI_REAPER_INTERVAL_SECONDS * 2},
        },
    }
    if settings.DEBUG:
        sender.conf.beat_schedule["demo-warehouse-tick"] = {
            "task": "bizdevops.tasks.demo_warehouse_tick",
            "schedule": 60.0,
            "options": {"expires": 120},
        }
