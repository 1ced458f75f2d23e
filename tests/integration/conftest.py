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

    def start(*, visibility_timeout: int = 3600, **env: str) -> Worker:
        name = f"test-{uuid.uuid4().hex[:12]}"
        log_path = tmp_path / f"worker-{len(workers) + 1}-{name}.log"
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
            "--concurrency=1",
            "-l",
            "info",
            "--include",
            "tests.integration.worker_calculations",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
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
    return start_worker()


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
