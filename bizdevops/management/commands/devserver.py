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
        "Development: the web server plus one Celery worker with the beat scheduler, so KPI "
        "jobs really run on schedule. Uses Redis when REDIS_URL is set, otherwise a file-system "
        "queue under var/celery (no server needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="Only the web server.")

    def handle(self, *args: Any, **options: Any) -> None:
        worker = None
        # With the autoreloader, this runs in the watching parent (RUN_MAIN unset) and in the
        # serving child; only the parent starts the worker.
        if not options["no_worker"] and os.environ.get("RUN_MAIN") != "true":
            worker = self._start_worker()
        try:
            call_command("runserver", options["addrport"])
        finally:
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        log = (var / "worker.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bizdevops",
            "worker",
            "--beat",
            "--schedule",
            str(var / "celerybeat-schedule"),
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ]
        self.stdout.write(
            f"Celery worker + beat on {settings.CELERY_BROKER_URL.split('@')[-1]} "
            f"(log: {var / 'worker.log'})"
        )
        return subprocess.Popen(  # noqa: S603  (a fixed command line, no user input)
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
