"""Losing a data source's PostgreSQL connection mid-run is worth a retry (issue 11): the
backend is ended with pg_terminate_backend while the run uses it."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import psycopg2
import pytest

from jobs import datasource_roles, services
from jobs.models import DataSource
from jobs.sources import SourceError, TransientSourceError, run_sql

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def tag() -> str:
    """The application_name of this test's data-source sessions: only they are terminated."""
    return f"kpi_lost_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def tagged_url(pg_scratch: tuple[str, str], tag: str) -> str:
    url, _ = pg_scratch
    return f"{url}?application_name={tag}"


@pytest.fixture
def tagged_source(tagged_url: str, admin_user: Any) -> DataSource:
    return services.data_source_save(
        user=admin_user, name="Postgres", kind="database", url=tagged_url
    )


def _terminate(admin_url: str, tag: str, *, sleeping: bool = False, wait: float = 5) -> None:
    """End the tagged backend on the test database (once it sleeps in pg_sleep, if asked:
    the named cursor's FETCH runs the query, so its text is not the query's)."""
    deadline = time.monotonic() + wait
    with closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s "
                    "AND (NOT %s OR wait_event = 'PgSleep') AND pid <> pg_backend_pid()",
                    [tag, sleeping],
                )
                if cursor.rowcount:
                    return
                time.sleep(0.05)
    raise AssertionError(f"No backend of {tag} to terminate (sleeping: {sleeping}).")


def _terminate_before_the_role_check(
    monkeypatch: pytest.MonkeyPatch, admin_url: str, tag: str
) -> None:
    """The backend dies between statements: after the session setup, before the role check."""
    role_problems = datasource_roles.role_problems

    def dying(cursor: Any) -> Any:
        _terminate(admin_url, tag)
        return role_problems(cursor)

    monkeypatch.setattr(datasource_roles, "role_problems", dying)


def test_a_query_whose_backend_is_terminated_is_retried(
    pg_admin_url: str, tagged_source: DataSource, tag: str
) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run_sql, tagged_source, "SELECT 1 FROM pg_sleep(5)", 10)
        _terminate(pg_admin_url, tag, sleeping=True)

        with pytest.raises(TransientSourceError, match="connection to the database was lost"):
            running.result(timeout=10)

    assert time.monotonic() - started < 4


def test_a_backend_terminated_between_statements_is_retried(
    monkeypatch: pytest.MonkeyPatch, pg_admin_url: str, tagged_source: DataSource, tag: str
) -> None:
    _terminate_before_the_role_check(monkeypatch, pg_admin_url, tag)

    with pytest.raises(TransientSourceError, match="connection to the database was lost"):
        run_sql(tagged_source, "SELECT 1", 10)


def test_a_role_check_whose_backend_is_terminated_does_not_refuse_the_save(
    monkeypatch: pytest.MonkeyPatch, admin_user: Any, pg_admin_url: str, tagged_url: str, tag: str
) -> None:
    _terminate_before_the_role_check(monkeypatch, pg_admin_url, tag)

    source = services.data_source_save(
        user=admin_user, name="Postgres", kind="database", url=tagged_url
    )

    assert source.pk is not None


def test_a_syntax_error_is_still_a_permanent_refusal(tagged_source: DataSource) -> None:
    with pytest.raises(SourceError, match=r"refused the query \(42601: syntax error\)") as excinfo:
        run_sql(tagged_source, "SELECT 1 +", 10)

    assert type(excinfo.value) is SourceError
