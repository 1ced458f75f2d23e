"""The beat schedule: the dispatcher and the reaper, at the intervals of the settings, and a
real worker that knows the tasks beat sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from bizdevops.celery import app
from tests.integration.helpers import ROOT, Worker

DISPATCH, REAP = "dispatch-due-kpi-jobs", "reap-stuck-kpi-runs"


def test_beat_schedule_has_the_dispatcher_and_the_reaper_at_the_configured_intervals():
    schedule = app.conf.beat_schedule
    assert schedule[DISPATCH]["task"] == "jobs.tasks.dispatch"
    assert schedule[DISPATCH]["schedule"] == settings.KPI_DISPATCH_INTERVAL_SECONDS
    assert schedule[REAP]["task"] == "jobs.tasks.reap"
    assert schedule[REAP]["schedule"] == settings.KPI_REAPER_INTERVAL_SECONDS


def test_beat_intervals_come_from_the_environment():
    """In a fresh process (the schedule is built when the app is configured): changing the
    settings' environment variables changes the schedule, so it is not hard-coded."""
    program = (
        "import json; from bizdevops.celery import app; "
        "print(json.dumps({k: [v['task'], v['schedule']] "
        "for k, v in app.conf.beat_schedule.items()}))"
    )
    env = os.environ | {
        "KPI_DISPATCH_INTERVAL_SECONDS": "7",
        "KPI_REAPER_INTERVAL_SECONDS": "45",
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DEBUG": "1",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    schedule = json.loads(result.stdout.strip().splitlines()[-1])
    assert schedule[DISPATCH] == ["jobs.tasks.dispatch", 7.0]
    assert schedule[REAP] == ["jobs.tasks.reap", 45.0]


# The same marks as helpers.INTEGRATION (the other tests of this module need no services).
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_worker_registers_the_tasks_beat_sends(worker: Worker):
    replies = app.control.inspect(destination=[worker.name], timeout=5).registered() or {}
    registered = set(replies.get(worker.name, []))
    assert {"jobs.tasks.dispatch", "jobs.tasks.reap", "jobs.tasks.execute_run"} <= registered
