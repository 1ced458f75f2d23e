"""Fault: the data source's PostgreSQL backend is terminated (pg_terminate_backend, as a
failover, a restart or an administrator does) while a real worker runs a KPI job's SQL query
on it. Only that backend dies, once: the data source's URL carries an application_name of its
own, and the test terminates the first backend of that name it sees in the query (never a
backend of the app, of another database or of this process).

Expected: the lost connection is a passing failure (jobs.sources: TransientSourceError), so the
run is retried after its backoff (an outbox message the sweep sends) and the second attempt,
left alone, records the value: one run, sent once, one measurement, nothing left over.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from jobs import services as job_services
from jobs.models import DataSource, Job, Run, RunState, retry_backoff
from kpis import services as kpi_services
from kpis.models import Measurement
from tests.integration.faults import each_once, tally, wait_quiet
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.jobs.helpers import pg_drop_role, pg_execute, postgres_url

pytestmark = INTEGRATION

SLEEP_SECONDS = 3
SQL = "SELECT 7 FROM pg_sleep(3)"  # sleeps SLEEP_SECONDS
VALUE = 7.0
MAX_RETRIES = 2
# The first attempt dies at once, the retry waits its backoff and sleeps again.
RUN_FINISHED_SECONDS = 30.0
FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]

# The data source's backend, while it runs the query (the named cursor's FETCH runs it, so
# the statement's text is not the query's: wait for the sleep itself).
SOURCE_BACKEND = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = %s
      AND state = 'active' AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()
    ORDER BY backend_start LIMIT 1
"""


@pytest.fixture
def source_tag() -> str:
    """The application_name of the data source's sessions: the only backends terminated."""
    return f"kpi_source_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def reader_url(transactional_db: None, source_tag: str) -> Iterator[str]:
    """A data-source URL on the test database as a least-privilege role of its own (it may
    log in, nothing more), tagged with `source_tag`. Requested before the worker, so the role
    is dropped after the worker has stopped."""
    admin_url = postgres_url(connection.settings_dict)
    role = f"kpi_reader_{uuid.uuid4().hex[:10]}"
    pg_execute(admin_url, f"CREATE ROLE {role} LOGIN")
    try:
        yield f"{postgres_url(connection.settings_dict, user=role)}?application_name={source_tag}"
    finally:
        pg_drop_role(admin_url, role)


def sql_job(portfolio: Portfolio, admin_user: Any, url: str) -> Job:
    """A KPI of an Ops initiative whose job runs SQL on a PostgreSQL data source."""
    source = job_services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=url
    )
    assert isinstance(source, DataSource)
    initiative = portfolio.initiative("Fraud scoring")
    kpi = kpi_services.kpi_define(initiative=initiative, user=portfolio.pm, name="Sleepy KPI")
    return job_services.job_register(
        kpi=kpi,
        user=portfolio.engineer,
        schedule_kind="interval",
        interval_seconds=3600,
        source_kind="sql",
        data_source=source,
        sql=SQL,
        max_retries=MAX_RETRIES,
    )


def describe_run(run: Run) -> Any:
    return list(
        Run.objects.filter(pk=run.pk).values_list("state", "attempt", "deliveries", "error")
    )


def test_a_run_whose_source_backend_is_terminated_mid_query_is_retried_and_succeeds(
    portfolio: Portfolio, admin_user: Any, reader_url: str, source_tag: str, start_worker: Any
) -> None:
    job = sql_job(portfolio, admin_user, reader_url)
    # The data source's URL is encrypted with this process's key (tests/conftest.py).
    worker: Worker = start_worker(beat=True, DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY)

    run = job_services.run_request(job=job, user=portfolio.engineer)
    started = time.monotonic()

    def source_backend() -> int | None:
        with connection.cursor() as cursor:
            cursor.execute(SOURCE_BACKEND, [source_tag])
            row = cursor.fetchone()
        return int(row[0]) if row else None

    first_pid = wait_for(
        source_backend,
        "the data source's backend to run the query",
        timeout=20,
        describe=lambda: (describe_run(run), worker.log_tail(20)),
    )
    with connection.cursor() as cursor:  # once: the second attempt's query must finish
        cursor.execute("SELECT pg_terminate_backend(%s)", [first_pid])
        (terminated,) = cursor.fetchone()
    assert terminated, f"backend {first_pid} was gone before it could be terminated"
    terminated_after = time.monotonic() - started
    # Back to queued, for the retry after its backoff: why the first attempt failed.
    first_error = wait_for(
        lambda: (
            Run.objects.filter(pk=run.pk, error__startswith="Attempt 1 failed")
            .values_list("error", flat=True)
            .first()
            or ""
        ),
        "the first attempt to fail",
        timeout=10,
        describe=lambda: describe_run(run),
    )

    wait_for(
        lambda: Run.objects.filter(pk=run.pk, state__in=FINISHED).exists(),
        "the run to finish",
        timeout=RUN_FINISHED_SECONDS,
        describe=lambda: describe_run(run),
    )
    finished = time.monotonic() - started
    wait_quiet(2)

    got = tally(jobs=[job], webhooks=False)
    expected = each_once(1) | {
        "runs executed more than once": 1,  # attempt 2: the retry of the lost query
    }
    retried = [line for line in worker.log().splitlines() if f"Run {run.pk}: attempt" in line]
    print(
        f"\nterminated the source backend {first_pid} {terminated_after:.1f} s after the run"
        f" was requested; the run finished after {finished:.1f} s (the query sleeps"
        f" {SLEEP_SECONDS} s, the retry waits {retry_backoff(1)} s)"
    )
    print(f"{first_error}\n" + "\n".join(retried))
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    run.refresh_from_db()
    assert (run.state, run.value, run.attempt, run.deliveries) == (
        RunState.SUCCEEDED,
        VALUE,
        2,
        1,
    ), run.error
    measurement = Measurement.objects.get(kpi=job.kpi)
    assert (measurement.run_id, measurement.value) == (run.pk, VALUE)
    # The first attempt failed transiently, for the lost connection, not for a refusal.
    assert "The connection to the database was lost" in first_error, first_error
    assert any("attempt 1 failed; retry in 2s" in line for line in retried), worker.log_tail()
    assert "The database refused the query" not in worker.log()
    assert finished >= SLEEP_SECONDS + retry_backoff(1)
    assert worker.alive
