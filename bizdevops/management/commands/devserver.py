from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

# The signals that stop `make run`: Ctrl-C, `kill`, and a terminal that is closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WORKER_STOP_SECONDS = 15
SERVER_STOP_SECONDS = 10


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux), so that
    nothing outlives a supervisor killed without a chance to clean up (SIGKILL, a crash).
    Runs in the child, also between fork and exec (`preexec_fn`): the setting survives exec."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return
    # The parent may have died before the request was made: then no signal would come.
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first signal counts: a terminal sends SIGHUP to every process of the group and
    # make forwards SIGTERM, so a second one must not interrupt the clean-up it started.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop(signum)


class Command(BaseCommand):
    help = (
        "Development: the web server plus two Celery workers (the control queue with the beat "
        "scheduler; runs, webhooks and e-mails), so KPI jobs really run on schedule. Uses Redis "
        "when REDIS_URL is set, otherwise a file-system queue under var/celery (no server "
        "needed). Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop all of it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="Only the web server.")
        parser.add_argument(
            "--serve",
            action="store_true",
            help="Internal: the web server itself (runserver with its autoreloader), started "
            "and stopped by devserver.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["serve"]:
            # Both the autoreloader's watching process and the serving process it restarts
            # pass here (RUN_MAIN tells them apart): each dies with its parent.
            die_with_parent()
            call_command("runserver", options["addrport"])
            return
        self._supervise(options["addrport"], workers=not options["no_worker"])

    def _supervise(self, addrport: str, *, workers: bool) -> None:
        """Start the web server and the workers, wait, and stop every one of them on the first
        of SIGINT, SIGTERM or SIGHUP, or when the web server ends (its port taken, say)."""
        # `make run` execs this process: if make dies, so does the supervisor.
        die_with_parent()
        for sig in STOP_SIGNALS:
            signal.signal(sig, _raise_stop)
        started: list[subprocess.Popen[bytes]] = []
        server: subprocess.Popen[bytes] | None = None
        code = 0
        try:
            if workers:
                started = self._start_workers()
            server = subprocess.Popen(  # noqa: S603  (our own manage.py, fixed arguments)
                [sys.executable, *self._manage(), "devserver", "--serve", addrport],
                # Not a session of its own: Ctrl-C in the terminal reaches it directly too.
                env={**os.environ, "DJANGO_RUNSERVER_HIDE_WARNING": "true"},
            )
            while server.poll() is None:
                time.sleep(0.5)
            code = server.returncode
        except _Stop:
            code = 0
        finally:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            self._stop(server, started)
        if code:
            sys.exit(code)

    @staticmethod
    def _manage() -> list[str]:
        manage = Path(sys.argv[0])
        if manage.name == "manage.py":
            return [str(manage)]
        return [str(Path(settings.BASE_DIR) / "manage.py")]

    @staticmethod
    def _stop(
        server: subprocess.Popen[bytes] | None, workers: list[subprocess.Popen[bytes]]
    ) -> None:
        # Each worker gets SIGTERM (a warm shutdown: the run in hand ends; it stops its pool
        # processes and the embedded beat itself: signalled directly, they would be replaced or
        # waited for), then its whole session SIGKILL after WORKER_STOP_SECONDS.
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Also when the worker itself has ended: a pool process or beat left behind.
            _signal_group(worker, signal.SIGKILL)
            worker.wait()

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
            with (var / f"{name}.log").open("ab") as log:
                started.append(
                    subprocess.Popen(  # noqa: S603  (a fixed command line, no user input)
                        [*command, "--loglevel", "INFO"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        # A session of its own: Ctrl-C in the terminal does not reach the
                        # worker half-way (a second signal would make Celery's shutdown cold);
                        # the supervisor stops it, and it dies with the supervisor.
                        start_new_session=True,
                        preexec_fn=die_with_parent,
                    )
                )
        return started


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
