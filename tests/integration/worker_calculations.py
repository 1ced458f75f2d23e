"""Test-only Python calculations for the integration tests.

The Celery worker that the integration tests start imports this module with
`--include tests.integration.worker_calculations`; the test process imports it from
`tests/integration/conftest.py`, so `kpis.services.job_register` accepts the names. Nothing
here is imported by the application itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.sources import SourceError, TransientSourceError, calculation

if TYPE_CHECKING:
    from jobs.models import Job

ANSWER = "integration.answer"
JOB_PK = "integration.job_pk"
SLOW_FIRST = "integration.slow_first"
FLAKY_FIRST = "integration.flaky_first"
ALWAYS_TRANSIENT = "integration.always_transient"
BROKEN = "integration.broken"

ANSWER_VALUE = 42.0
SLOW_FIRST_VALUE = 7.0
FLAKY_FIRST_VALUE = 5.0
TRANSIENT_MESSAGE = "The warehouse refused the connection (integration test)."
BROKEN_MESSAGE = "The calculation is broken (integration test)."
# Where the calculations leave their marker files; the worker fixture sets it for every worker.
MARKER_DIR_ENV = "BIZDEVOPS_TEST_MARKER_DIR"
SLOW_FIRST_SLEEP_SECONDS = 60.0


def marker_path(directory: Path | str, job_pk: int) -> Path:
    return Path(directory) / f"job-{job_pk}.started"


def _first_execution(job: Job) -> bool:
    """True exactly once per job: creates the job's marker file (holding this process id)."""
    directory = os.environ.get(MARKER_DIR_ENV)
    if not directory:
        raise RuntimeError(f"{MARKER_DIR_ENV} is not set in the worker's environment.")
    try:
        with marker_path(directory, job.pk).open("x") as file:  # exclusive create
            file.write(str(os.getpid()))
    except FileExistsError:
        return False
    return True


@calculation(ANSWER, "Integration tests: always 42")
def answer(job: Job) -> float:
    return ANSWER_VALUE


@calculation(JOB_PK, "Integration tests: the job's own id")
def job_pk(job: Job) -> float:
    return float(job.pk)


@calculation(SLOW_FIRST, "Integration tests: hangs on the first execution, then answers")
def slow_first(job: Job) -> float:
    """The first execution for a job (each test job has one run) writes the marker file and
    hangs, so that the test can kill the worker mid-run; every later execution answers."""
    if _first_execution(job):
        time.sleep(SLOW_FIRST_SLEEP_SECONDS)
    return SLOW_FIRST_VALUE


@calculation(FLAKY_FIRST, "Integration tests: a transient error first, then answers")
def flaky_first(job: Job) -> float:
    if _first_execution(job):
        raise TransientSourceError(TRANSIENT_MESSAGE)
    return FLAKY_FIRST_VALUE


@calculation(ALWAYS_TRANSIENT, "Integration tests: a transient error every time")
def always_transient(job: Job) -> float:
    raise TransientSourceError(TRANSIENT_MESSAGE)


@calculation(BROKEN, "Integration tests: a permanent error")
def broken(job: Job) -> float:
    raise SourceError(BROKEN_MESSAGE)


SLOW = "integration.slow"
SLOW_VALUE = 3.0
# How long every execution of SLOW takes, read by the pool process at each execution, so that
# each worker of a test can be given its own.
SLOW_SECONDS_ENV = "BIZDEVOPS_TEST_SLOW_SECONDS"
SLOW_SECONDS_DEFAULT = 3.0


def executions_path(directory: Path | str, job_pk: int) -> Path:
    return Path(directory) / f"job-{job_pk}.executions"


def executions(directory: Path | str, job_pk: int) -> list[tuple[str, int]]:
    """The (`start` | `end`, process id) lines SLOW wrote for the job, in order."""
    try:
        lines = executions_path(directory, job_pk).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(what, int(pid)) for what, pid in (line.split() for line in lines)]


@calculation(SLOW, "Integration tests: takes a few seconds every time, then answers")
def slow(job: Job) -> float:
    """Writes `start <pid>` to the job's executions file, sleeps, writes `end <pid>`."""
    directory = os.environ.get(MARKER_DIR_ENV)
    if not directory:
        raise RuntimeError(f"{MARKER_DIR_ENV} is not set in the worker's environment.")
    path = executions_path(directory, job.pk)
    with path.open("a") as file:
        file.write(f"start {os.getpid()}\n")
    time.sleep(float(os.environ.get(SLOW_SECONDS_ENV, SLOW_SECONDS_DEFAULT)))
    with path.open("a") as file:
        file.write(f"end {os.getpid()}\n")
    return SLOW_VALUE


KILLS_ITS_CONNECTION = "integration.kills_its_connection"
KILLS_ITS_CONNECTION_VALUE = 11.0


@calculation(
    KILLS_ITS_CONNECTION, "Integration tests: the app's database connection dies, then answers"
)
def kills_its_connection(job: Job) -> float:
    """Has another connection terminate the worker's app connection (the one that claimed the
    run, PostgreSQL only) and waits until that backend is gone, then answers: the next query,
    the result's write, meets a dead connection."""
    from django.db import DEFAULT_DB_ALIAS, connection, connections

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            # With a timeout (ms), PostgreSQL 14+ waits for the backend to exit.
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            (terminated,) = cursor.fetchone()
    finally:
        other.close()
    if not terminated:
        raise RuntimeError(f"Backend {pid} was not terminated.")
    return KILLS_ITS_CONNECTION_VALUE
