"""Parts of the fault tests (issue 11, "nothing lost when a part fails"): a Redis server of the
test's own, which it may stop and start again (never the shared one), `celery beat`
subprocesses, and the tally of what the system did (runs, measurements, webhook deliveries,
duplicates) that every fault test compares with what it expected.

A test module puts its workers, beats and this process on its own Redis by overriding the
`broker_url` fixture (the `broker` and `start_worker` fixtures of conftest.py take it):

    @pytest.fixture
    def broker_url(own_redis: RedisServer) -> str:
        return own_redis.url
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count

from bizdevops.models import OutboxMessage
from jobs.models import Job, Run, RunState
from kpis.models import Measurement
from notifications.models import DeliveryState, WebhookDelivery
from tests.integration.helpers import (
    MARKER_DIR_ENV,
    ROOT,
    celery_command,
    database_url,
    wait_for,
)

REDIS_START_SECONDS = 10.0
REDIS_STOP_SECONDS = 10.0
BEAT_START_SECONDS = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A `redis-server` subprocess on 127.0.0.1 (no persistence: a restart starts empty, as
    a Redis without AOF/RDB does after a crash). `stop()` and `start()` keep the port, so
    clients reconnect to the same URL."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        command = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            "",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  (our own command line)
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        client = self.client()

        def answers() -> bool:
            if not self.running:
                pytest.fail(
                    f"redis-server on port {self.port} exited:\n{self.log_tail()}", pytrace=False
                )
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_for(
                answers,
                f"redis-server on port {self.port} to answer",
                timeout=REDIS_START_SECONDS,
                interval=0.05,
            )
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown; nothing is saved) or SIGKILL (a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=REDIS_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=REDIS_STOP_SECONDS)
        self.process = None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Redis hangs inside the block (SIGSTOP: the kernel still accepts connections, but
        nothing answers), and goes on after it (SIGCONT), with everything it held."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.thaw()

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def down(self, *, kill: bool = False) -> Iterator[None]:
        """Redis is away inside the block and back (empty, same port) after it, also when
        the block fails (the fixtures' teardown needs it)."""
        self.stop(kill=kill)
        try:
            yield
        finally:
            self.start()


def service_environment(
    *, db_url: str, broker_url: str, marker_dir: Path, tmp_path: Path, **env: str
) -> dict[str, str]:
    """The environment of a worker or beat subprocess of the tests (as start_worker's)."""
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,
        "DEBUG": "1",
        # With DEBUG, beat sends the demo warehouse tick: keep its file out of the tree.
        "DEMO_WAREHOUSE_PATH": str(tmp_path / "warehouse.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        MARKER_DIR_ENV: str(marker_dir),
        **env,
    }


def beat_command(directory: Path, name: str) -> list[str]:
    """`celery beat` with its own schedule file and pid file (two beats never share one)."""
    return [
        *celery_command(),
        "-A",
        "bizdevops",
        "beat",
        "-l",
        "info",
        "--schedule",
        str(directory / f"{name}-schedule"),
        "--pidfile",
        str(directory / f"{name}.pid"),
        "--max-interval",
        "1",
    ]


def sent_count(log: str, entry: str) -> int:
    """How many times a beat's log says it sent the schedule entry `entry`."""
    return log.count(f"Sending due task {entry} ")


def each_once(
    runs: int, *, deliveries: int | None = None, posts: int | None = None
) -> dict[str, int]:
    """The tally of a fault survived: `runs` runs, each succeeded, executed and sent once,
    one measurement each, nothing left in the outbox; with `deliveries`, that many webhook
    deliveries, each delivered at its first attempt; with `posts`, that many POSTs received,
    none twice. A test that expects a count to differ says so: `each_once(3) | {...}`."""
    expected = {
        "runs": runs,
        "runs succeeded": runs,
        "runs not finished": 0,
        "runs executed more than once": 0,
        "runs sent more than once": 0,
        "measurements": runs,
        "measurements without their run": 0,
        "duplicate measurements (kpi, as_of)": 0,
        "outbox messages left": 0,
    }
    if deliveries is not None:
        expected |= {
            "webhook deliveries": deliveries,
            "webhook deliveries delivered": deliveries,
            "webhook attempts beyond the first": 0,
        }
    if posts is not None:
        expected |= {
            "webhook POSTs received": posts,
            "webhook deliveries received more than once": 0,
        }
    return expected


def tally(
    *, jobs: Iterable[Job], receiver: Any | None = None, webhooks: bool = True
) -> dict[str, int]:
    """What the system did for these jobs (and, with `webhooks`, every webhook delivery; with
    a `receiver` (tests.servers.LocalServer), the POSTs it received), and the duplicates."""
    job_ids = [job.pk for job in jobs]
    runs = Run.objects.filter(job_id__in=job_ids)
    measurements = Measurement.objects.filter(kpi__job__in=job_ids)
    counts = {
        "runs": runs.count(),
        "runs succeeded": runs.filter(state=RunState.SUCCEEDED).count(),
        "runs not finished": runs.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).count(),
        "runs executed more than once": runs.filter(attempt__gt=1).count(),
        "runs sent more than once": runs.filter(deliveries__gt=1).count(),
        "measurements": measurements.count(),
        "measurements without their run": measurements.filter(run__isnull=True).count(),
        "duplicate measurements (kpi, as_of)": measurements.values("kpi", "as_of")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
        "outbox messages left": OutboxMessage.objects.count(),
    }
    if webhooks:
        deliveries = WebhookDelivery.objects.all()
        counts["webhook deliveries"] = deliveries.count()
        counts["webhook deliveries delivered"] = deliveries.filter(
            state=DeliveryState.DELIVERED
        ).count()
        counts["webhook attempts beyond the first"] = sum(
            max(0, attempts - 1) for attempts in deliveries.values_list("attempts", flat=True)
        )
    if receiver is not None:
        received = Counter(
            request.headers.get("x-bizdevops-delivery") for request in receiver.requests
        )
        counts["webhook POSTs received"] = sum(received.values())
        counts["webhook deliveries received more than once"] = sum(
            1 for n in received.values() if n > 1
        )
    return counts


def wait_quiet(seconds: float) -> None:
    """Let the system run on for a while (a late duplicate would show up in the tally)."""
    time.sleep(seconds)


def app_database_url(application_name: str) -> str:
    """The test database's URL with an `application_name` of its own, so that the backends of
    a worker started with it can be told from this process's (see BackendTerminator)."""
    url = database_url(connection.settings_dict)
    return f"{url}?application_name={quote(application_name, safe='')}"


def lost_connection_count(log: str, what: str) -> int:
    """How many times a worker's log says it lost the database connection during `what`
    (bizdevops.db.retry_on_lost_connection)."""
    return log.count(f"Lost the database connection during {what} (")


class BackendTerminator:
    """Inside a `with` block, terminates (pg_terminate_backend) every backend of the test
    database whose application_name is `application_name`, again and again, from a thread
    with a connection of its own; `terminated` lists the pids it terminated."""

    def __init__(self, application_name: str, interval: float = 0.05) -> None:
        self.application_name = application_name
        self.interval = interval
        self.terminated: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def terminate_once(self) -> list[int]:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s "
                "AND pid <> pg_backend_pid()",
                [self.application_name],
            )
            pids = [int(pid) for pid, done in cursor.fetchall() if done]
        self.terminated.extend(pids)
        return pids

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.terminate_once()
                self._stop.wait(self.interval)
        finally:
            connections.close_all()  # this thread's own connection

    def __enter__(self) -> BackendTerminator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
