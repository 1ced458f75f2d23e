"""Integration tests with real parts: a `celery worker` subprocess (prefork pool) consuming
from a real Redis and writing to the real PostgreSQL test database.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        REDIS_URL=redis://127.0.0.1:6379/15 BIZDEVOPS_REQUIRE_SERVICES=1 \
        .venv/bin/pytest tests/integration

Without PostgreSQL or REDIS_URL the worker tests skip (or fail with
BIZDEVOPS_REQUIRE_SERVICES=1, see tests/conftest.py). They use Redis database 15 of the
REDIS_URL server (BIZDEVOPS_TEST_REDIS_DB picks another) and flush it before and after every
test: never run two test sessions on the same Redis database and PostgreSQL test database.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

# Registers the test-only calculations in this process too (job_register checks the name).
import tests.integration.worker_calculations  # noqa: F401
from bizdevops.celery import app as celery_app
from tests.integration.faults import (
    BEAT_START_SECONDS,
    RedisServer,
    beat_command,
    service_environment,
)
from tests.integration.helpers import (
    MARKER_DIR_ENV,
    ROOT,
    WORKER_START_SECONDS,
    Portfolio,
    Worker,
    celery_command,
    database_url,
    redis_url_for_tests,
    wait_for,
)

_WORKERS = pytest.StashKey[list[Worker]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the integration tests after the other tests: the flush after each of them empties
    the rows that data migrations created, which transactional tests without
    serialized_rollback (tests/phases/test_concurrency.py) need. Browser tests restore them
    too, so it does not matter whether they come before or after."""
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.path)).parents]
    if mine:
        others = [item for item in items if here not in Path(str(item.path)).parents]
        items[:] = others + mine


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, show the tail of every worker's log in the report."""
    report = yield
    if report.failed:
        for worker in item.stash.get(_WORKERS, []):
            report.sections.append((f"worker {worker.name} log (tail)", worker.log_tail()))
    return report


def _point_app_at(url: str) -> str:
    """Make this process publish to `url`; return the previous broker URL."""
    previous = str(celery_app.conf.broker_url)
    celery_app.conf.broker_write_url = None  # follows broker_url
    if previous != url:
        celery_app.conf.broker_url = url
        # Forget the pools of the old broker, as Celery itself does after a fork (kombu keeps
        # them in its registry, per broker, for when the URL is set back).
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
    return previous


@pytest.fixture
def broker_url() -> str:
    return redis_url_for_tests(os.environ["REDIS_URL"])


@pytest.fixture
def broker(broker_url: str) -> Iterator[redis.Redis]:
    """The tests' Redis database, empty, and this process publishing to it."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=10)
    client.flushdb()
    previous = _point_app_at(broker_url)
    try:
        yield client
    finally:
        _point_app_at(previous)
        client.flushdb()
        client.close()


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest,
    transactional_db: None,
    broker: redis.Redis,
    broker_url: str,
    marker_dir: Path,
    tmp_path: Path,
) -> Iterator[Callable[..., Worker]]:
    """Start `celery worker` subprocesses on the test database and the tests' Redis DB;
    every one is stopped at teardown (before the database is flushed)."""
    workers: list[Worker] = []
    request.node.stash[_WORKERS] = workers
    db_url = database_url(connection.settings_dict)

    def start(
        *,
        visibility_timeout: int = 3600,
        beat: bool = False,
        queues: str = "",
        concurrency: int = 1,
        **env: str,
    ) -> Worker:
        """With `beat`, the worker runs the beat scheduler too, for the outbox sweep that
        sends delayed messages (retries): every 0.5 s; the dispatcher and the reaper hourly,
        unless `env` says otherwise. Without `queues`, it consumes every queue."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        log_path = tmp_path / f"worker-{len(workers) + 1}-{name}.log"
        if beat:
            env = {
                "OUTBOX_SWEEP_INTERVAL_SECONDS": "0.5",
                "KPI_DISPATCH_INTERVAL_SECONDS": "3600",
                "KPI_REAPER_INTERVAL_SECONDS": "3600",
                **env,
            }
        environment = os.environ | {
            "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": broker_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
            "DEBUG": "1",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])
            ),
            MARKER_DIR_ENV: str(marker_dir),
            **env,
        }
        command = [
            *celery_command(),
            "-A",
            "bizdevops",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "-l",
            "info",
            "--include",
            "tests.integration.worker_calculations",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        if beat:
            command += ["--beat", "--schedule", str(tmp_path / f"beat-{name}")]
        if queues:
            command += ["--queues", queues]
        with log_path.open("wb") as log:
            process = subprocess_popen(command, environment, log)
        nodename = f"{name}@{celery_hostname()}"
        worker = Worker(name=nodename, process=process, log_path=log_path)
        workers.append(worker)

        def answered() -> bool:
            if not worker.alive:
                pytest.fail(
                    f"The worker exited with {process.returncode}:\n{worker.log_tail()}",
                    pytrace=False,
                )
            replies = celery_app.control.ping(destination=[nodename], timeout=0.5)
            return any(nodename in reply for reply in replies)

        wait_for(
            answered,
            f"worker {nodename} to answer a ping",
            timeout=WORKER_START_SECONDS,
            interval=0.2,
            describe=worker.log_tail,
        )
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def worker(start_worker: Callable[..., Worker]) -> Worker:
    return start_worker(beat=True)


@pytest.fixture
def portfolio(pm: Any, stakeholder: Any, scientist: Any, engineer: Any, unit: Any) -> Portfolio:
    return Portfolio(
        pm=pm, stakeholder=stakeholder, scientist=scientist, engineer=engineer, unit=unit
    )


def subprocess_popen(command: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  (our own command line)
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed as a whole
    )


def celery_hostname() -> str:
    """What `%h` expands to in a worker's node name."""
    from celery.utils.nodenames import gethostname

    return str(gethostname())


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A `redis-server` of this test's own, on a free port, that the test may stop and start
    again (`.stop()`, `.start()`, `with own_redis.down(): ...`); the shared Redis is never
    touched. Override `broker_url` with its `.url` to put the workers, beats and this process
    on it (see tests/integration/faults.py)."""
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_beat(
    request: pytest.FixtureRequest,
    start_worker: Callable[..., Worker],
    broker_url: str,
    marker_dir: Path,
    tmp_path: Path,
) -> Iterator[Callable[..., Worker]]:
    """Start `celery beat` subprocesses (each with its own schedule file) on the test database
    and the tests' broker; they are stopped at teardown, before the workers. Their logs show
    in a failure report with the workers'."""
    beats: list[Worker] = []
    db_url = database_url(connection.settings_dict)

    def start(name: str | None = None, **env: str) -> Worker:
        """A beat; give the `name` of an earlier one to restart it on its schedule file."""
        name = name or f"beat-{len(beats) + 1}"
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        environment = service_environment(
            db_url=db_url, broker_url=broker_url, marker_dir=marker_dir, tmp_path=tmp_path, **env
        )
        log_path = tmp_path / f"{name}-{len(beats) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  (our own command line)
                beat_command(directory, name),
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        beat = Worker(name=name, process=process, log_path=log_path)
        beats.append(beat)
        request.node.stash.setdefault(_WORKERS, []).append(beat)

        def started() -> bool:
            if not beat.alive:
                pytest.fail(
                    f"{name} exited with {process.returncode}:\n{beat.log_tail()}", pytrace=False
                )
            return "beat: Starting..." in beat.log()

        wait_for(
            started,
            f"{name} to start",
            timeout=BEAT_START_SECONDS,
            interval=0.2,
            describe=beat.log_tail,
        )
        return beat

    try:
        yield start
    finally:
        for beat in beats:
            beat.stop()
