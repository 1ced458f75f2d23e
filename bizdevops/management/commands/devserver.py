from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Development: the web server plus two Celery workers (the control queue with the beat "
        "scheduler; runs, webhooks and e-mails), so KPI jobs really run on schedule. Uses Redis "
        "when REDIS_URL is set, otherwise a file-system "
        "queue under var/celery (no server needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="Only the web server.")

    def handle(self, *args: Any, **options: Any) -> None:
        workers: list[subprocess.Popen[bytes]] = []
        # With the autoreloader, this runs in the watching parent (RUN_MAIN unset) and in the
        # serving child; only the parent starts the workers.
        if not options["no_worker"] and os.environ.get("RUN_MAIN") != "true":
            workers = self._start_workers()
        try:
            call_command("runserver", options["addrport"])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)

    def _start_workers(self) -> list[subprocess.Popen[bytes]]:
        """Two workers, as in docker-compose.yml but smaller: one for the `control` queue with
        the beat scheduler (dispatcher, reaper, outbox sweep), so a backlog of runs never
        delays them; one for runs, webhooks and e-mails."""
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        celery = [sys.executable, "-m", "celery", "-A", "bizdevops", "worker"]
        commands = {
            "control": [
                *celery,
                "--queues",
                "control",
                "--hostname",
                "control@%h",
                "--pool",
                "solo",
                "--beat",
                "--schedule",
                str(var / "celerybeat-schedule"),
            ],
            "worker": [
                *celery,
                "--queues",
                "runs,webhooks,notifications",
                "--hostname",
                "runs@%h",
                "--concurrency",
                "2",
            ],
        }
        self.stdout.write(
            f"Celery workers (control + beat; runs, webhooks, e-mails) on "
            f"{settings.CELERY_BROKER_URL.split('@')[-1]} (logs: {var}/control.log, "
            f"{var}/worker.log)"
        )
        started = []
        for name, command in commands.items():
            log = (var / f"{name}.log").open("ab")
            started.append(
                subprocess.Popen(  # noqa: S603  (a fixed command line, no user input)
                    [*command, "--loglevel", "INFO"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return started
