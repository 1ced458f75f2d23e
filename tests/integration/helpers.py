"""Helpers of the integration tests: a real Celery worker subprocess, bounded waits, and
initiatives / jobs built through the services."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.utils import timezone

from initiatives.models import Initiative, Phase
from jobs import services as job_services
from jobs.models import Job
from kpis import services as kpi_services
from phases.models import Decision
from tests.factories import decide, make_initiative, pass_biz_gate, pass_dev_gate
from tests.integration.worker_calculations import ANSWER, MARKER_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]

# Every worker test needs PostgreSQL (the worker is another process: it sees only committed
# rows, hence transactional tests) and Redis (the broker). The flush after a transactional
# test also deletes what data migrations created (roles, gates, criteria): serialized_rollback
# puts it back before each test.
INTEGRATION = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WAIT_SECONDS = 30.0
WORKER_START_SECONDS = 30.0
WORKER_STOP_SECONDS = 20.0
# The Redis DB the integration tests own (on the REDIS_URL server): it is flushed before and
# after every test. BIZDEVOPS_TEST_REDIS_DB picks another one, e.g. for two test sessions at once
# (give them different DATABASE_URL database names too).
REDIS_DB = int(os.environ.get("BIZDEVOPS_TEST_REDIS_DB", "15"))
# kombu's Redis transport keeps taken-but-unacknowledged messages in these keys.
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
TASK_QUEUE = "runs"  # where execute_run messages wait (CELERY_TASK_ROUTES)

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    what: str,
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = 0.1,
    describe: Callable[[], object] | None = None,
) -> T:
    """Poll until `predicate()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            state = f" (last seen: {describe()})" if describe else ""
            pytest.fail(f"Timed out after {timeout:g} s waiting for {what}{state}", pytrace=False)
        time.sleep(interval)


def redis_url_for_tests(url: str) -> str:
    """The same Redis server, database REDIS_DB."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database Django is connected to (the test database)."""
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    credentials = user + (f":{password}" if password else "")
    host = str(settings_dict.get("HOST") or "")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    name = quote(str(settings_dict["NAME"]), safe="")
    return f"postgres://{credentials}{'@' if credentials else ''}{host}{port}/{name}"


def celery_command() -> list[str]:
    celery = ROOT / ".venv" / "bin" / "celery"
    if celery.exists():
        return [str(celery)]
    return [sys.executable, "-m", "celery"]


@dataclass
class Worker:
    """A `celery worker` subprocess, leader of its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stopped: bool = field(default=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (the main process and its pool child) at once."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_SECONDS)
        self.stopped = True

    def stop(self) -> None:
        """SIGTERM the process group (warm shutdown), SIGKILL it if it does not exit."""
        if self.stopped:
            return
        self.stopped = True
        if self.alive:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=WORKER_STOP_SECONDS)
        # Whatever is left of the group (a pool child that outlived the main process).
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_SECONDS)

    def terminate(self, *, timeout: float = WORKER_STOP_SECONDS) -> int:
        """SIGTERM the main process only, as `docker stop` does (and systemd with
        KillMode=mixed): stopping the pool processes is the worker's business. Wait for it to
        exit and return its exit code. What is left of the group is killed at teardown."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=timeout)


class Portfolio:
    """Initiatives and jobs built through the services, the way people would."""

    def __init__(self, *, pm: Any, stakeholder: Any, scientist: Any, engineer: Any, unit: Any):
        self.pm, self.stakeholder, self.scientist = pm, stakeholder, scientist
        self.engineer, self.unit = engineer, unit

    def initiative(self, title: str, phase: Phase = Phase.OPS) -> Initiative:
        """An active initiative in `phase`: the Biz → Dev gate passed and decided, then the
        Dev → Ops gate (its trial runs execute in this process, see tests/factories.py)."""
        initiative = make_initiative(self.pm, self.unit, title=title)
        initiative = pass_biz_gate(
            initiative,
            pm=self.pm,
            stakeholder=self.stakeholder,
            scientist=self.scientist,
            engineer=self.engineer,
        )
        if phase == Phase.BIZ:
            return initiative
        initiative = decide(initiative, Decision.GO, self.pm)
        if phase == Phase.DEV:
            return initiative
        pass_dev_gate(initiative, pm=self.pm, stakeholder=self.stakeholder, engineer=self.engineer)
        initiative = decide(initiative, Decision.GO, self.pm)
        assert initiative.phase == Phase.OPS
        return initiative

    def job(
        self, initiative: Initiative, kpi_name: str, calculation: str = ANSWER, **values: Any
    ) -> Job:
        """A new KPI (defined by the PM) and its job (registered by the data engineer)."""
        kpi = kpi_services.kpi_define(initiative=initiative, user=self.pm, name=kpi_name)
        values.setdefault("schedule_kind", "interval")
        values.setdefault("interval_seconds", 3600)
        return job_services.job_register(
            kpi=kpi,
            user=self.engineer,
            source_kind="python",
            calculation=calculation,
            **values,
        )

    @staticmethod
    def make_due(*jobs: Job, at: dt.datetime | None = None) -> dt.datetime:
        """Move the jobs' next run into the past (one row update, as the dispatcher reads)."""
        at = at or (timezone.now() - dt.timedelta(minutes=10)).replace(microsecond=0)
        updated = Job.objects.filter(pk__in=[job.pk for job in jobs]).update(next_run_at=at)
        assert updated == len(jobs)
        return at


__all__ = ["INTEGRATION", "MARKER_DIR_ENV", "Portfolio", "Worker", "wait_for"]
