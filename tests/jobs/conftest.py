from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from initiatives.models import Initiative
from jobs import services
from jobs.models import DataSource, Job
from kpis.models import KPI
from phases.models import Decision
from tests.factories import decide, pass_dev_gate

ORDERS = [(1, 10.0, "card"), (2, 20.5, "card"), (3, None, "cash")]


@pytest.fixture
def dev_initiative(ready_initiative: Initiative, pm: Any) -> Initiative:
    """The standard initiative in Dev: KPI 'Fraud caught' (no job), engineer on the team."""
    return decide(ready_initiative, Decision.GO, pm)


@pytest.fixture
def ops_initiative(dev_initiative: Initiative, pm: Any, stakeholder: Any) -> Initiative:
    """The standard initiative, active in Ops through both gates. pass_dev_gate registered a
    Python-calculation job (every 5 minutes) for its KPI and trial-ran it."""
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    return decide(dev_initiative, Decision.GO, pm)


@pytest.fixture
def ops_kpi(ops_initiative: Initiative) -> KPI:
    return ops_initiative.kpis.get(name="Fraud caught")


@pytest.fixture
def ops_job(ops_kpi: KPI) -> Job:
    job = Job.objects.get(kpi=ops_kpi)
    assert job.enabled
    assert (job.schedule_kind, job.interval_seconds) == ("interval", 300)
    return job


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
