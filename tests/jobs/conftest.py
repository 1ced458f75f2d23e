from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from jobs import services
from jobs.models import DataSource, Job
from tests.jobs.helpers import pg_drop_role, pg_execute, postgres_url

ORDERS = [(1, 10.0, "card"), (2, 20.5, "card"), (3, None, "cash")]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A SQLite file standing in for a data warehouse."""
    path = tmp_path / "source.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, channel TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", ORDERS)
        db.commit()
    return path


@pytest.fixture
def sqlite_source(admin_user: Any, warehouse: Path) -> DataSource:
    return services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=f"sqlite:///{warehouse}"
    )


@pytest.fixture
def unreachable_source(admin_user: Any) -> DataSource:
    """A PostgreSQL data source on a closed local port: every connection is refused."""
    return services.data_source_save(
        user=admin_user,
        name="Down",
        kind="database",
        url="postgres://postgres@127.0.0.1:1/x",
    )


@pytest.fixture
def sql_job(ops_job: Job, engineer: Any, sqlite_source: DataSource) -> Job:
    """The Ops job switched to a SQL query on the SQLite warehouse (sum of amounts: 30.5)."""
    return services.job_update(
        job=ops_job,
        user=engineer,
        source_kind="sql",
        data_source=sqlite_source,
        sql="SELECT sum(amount) FROM orders",
    )


@pytest.fixture
def pg_admin_url(db: Any) -> str:
    """The test database as Django's own (super)user: for setting up, never a data source."""
    return postgres_url(connection.settings_dict)


@pytest.fixture
def pg_scratch(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """(URL of a read-only role on the test database, its scratch table with n = 1, 2, 3)."""
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"kpi_scratch_{suffix}", f"kpi_reader_{suffix}"
    try:
        pg_execute(
            pg_admin_url,
            f"CREATE SCHEMA {schema}",
            f"CREATE TABLE {schema}.facts (n integer PRIMARY KEY, label text)",
            f"INSERT INTO {schema}.facts VALUES (1, 'a'), (2, 'b'), (3, 'c')",  # noqa: S608
            f"CREATE ROLE {role} LOGIN",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT ON {schema}.facts TO {role}",
        )
        yield postgres_url(connection.settings_dict, user=role), f"{schema}.facts"
    finally:
        pg_execute(pg_admin_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg_drop_role(pg_admin_url, role)
