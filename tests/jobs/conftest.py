from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from jobs import services
from jobs.models import DataSource, Job

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
