"""The migrations that moved data sources, jobs and runs into the `jobs` app (and made alerts
plain data) keep every row of a real database.

A database is migrated to the schema of commit 4508a72, filled with what `seed_demo` made on
that schema (plus an alert of each kind, a webhook and a token: old_schema_seed.json, written
by make_old_schema_fixture.py in a checkout of that commit), and migrated to today's schema in
other processes, as `manage.py migrate` would on an upgrade. Then every row of every table is
compared with the file. On SQLite always; on PostgreSQL too when DATABASE_URL points at one (a
database of its own, dropped afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURE = HERE / "old_schema_seed.json"
# Tables of the moved models: old name -> new name.
RENAMED = {"kpis_datasource": "jobs_datasource", "kpis_job": "jobs_job", "kpis_run": "jobs_run"}
ALERT_FOREIGN_KEYS = {"initiative_id", "kpi_id", "run_id"}
# Tables that `migrate` adds rows to for models that are new since the old schema (apps
# installed since, such as django-axes): every old row must still be there, unchanged.
GROWN_BY_MIGRATE = {"django_content_type", "auth_permission"}
MOVED_MODELS = {"datasource", "job", "run"}


def _run(url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=url, DEBUG="1", DJANGO_SETTINGS_MODULE="bizdevops.settings")
    done = subprocess.run(  # noqa: S603  (our own script)
        [sys.executable, str(HERE / "upgrade.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


def _postgres_database() -> Iterator[str]:
    # The `postgres` mark (tests/conftest.py) skips this without PostgreSQL, and fails it
    # instead in CI (BIZDEVOPS_REQUIRE_SERVICES=1).
    base = os.environ["DATABASE_URL"]
    import psycopg2

    name = f"bizdevops_upgrade_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(base)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(base)
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
        with admin.cursor() as cursor:
            # Only this test's database: its own leftover connections, then the database.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
    else:
        yield from _postgres_database()


def _same(value: Any, expected: Any) -> bool:
    """A value read back against the SQLite-exported one (text timestamps, 0/1 booleans)."""
    if value == expected or (value is None) != (expected is None):
        return value == expected
    if isinstance(value, bool):
        return int(value) == expected
    if isinstance(value, float | int) and isinstance(expected, float | int):
        return abs(value - expected) < 1e-9
    normal = str(value).replace("T", " ")
    wanted = str(expected).replace("T", " ")
    if normal.endswith("+00:00") and not wanted.endswith("+00:00"):
        wanted += "+00:00"
    if wanted.endswith("+00:00") and not normal.endswith("+00:00"):
        normal += "+00:00"
    try:
        return json.loads(normal) == json.loads(wanted)
    except ValueError:
        return normal == wanted


def _counts_kept(table: str, old: int, new: int) -> bool:
    return new >= old if table in GROWN_BY_MIGRATE else new == old


def test_every_row_survives_the_upgrade(database: str) -> None:
    old = json.loads(FIXTURE.read_text())["tables"]
    _run(database, "old-schema")
    _run(database, "load", str(FIXTURE))
    _run(database, "migrate")
    now = json.loads(_run(database, "dump"))

    problems = []
    for table, content in old.items():
        new_table = RENAMED.get(table, table)
        assert new_table in now, f"{table} is gone"
        rows = {row["id"]: row for row in now[new_table]} if "id" in content["columns"] else None
        assert _counts_kept(table, len(content["rows"]), len(now[new_table])), new_table
        if rows is None:
            continue
        for row in content["rows"]:
            old_row = dict(zip(content["columns"], row, strict=True))
            new_row = rows.get(old_row["id"])
            assert new_row is not None, f"{new_table} row {old_row['id']} is gone"
            for column, value in old_row.items():
                if table == "notifications_alert" and column in ALERT_FOREIGN_KEYS:
                    continue
                if table == "notifications_alert" and column == "to_status" and not value:
                    continue  # a failed run's alert now says so (checked below)
                if table == "django_content_type" and old_row["model"] in MOVED_MODELS:
                    value = "jobs" if column == "app_label" else value  # followed the model
                if not _same(new_row[column], value):
                    problems.append(
                        f"{new_table}.{column} of {old_row['id']}: {value!r} → {new_row[column]!r}"
                    )
    assert not problems, "\n".join(problems[:20])
    for table in RENAMED:
        assert table not in now

    # Alerts keep what they were about, as plain data.
    columns = old["notifications_alert"]["columns"]
    old_alerts = {
        row[0]: dict(zip(columns, row, strict=True)) for row in old["notifications_alert"]["rows"]
    }
    jobs_of_runs = {row["id"]: row["job_id"] for row in now["jobs_run"]}
    assert {a["kind"] for a in old_alerts.values()} == {"kpi_status", "run_failed"}
    for alert in now["notifications_alert"]:
        before = old_alerts[alert["id"]]
        key = f"BDO-{before['initiative_id']}"
        assert (alert["subject"], alert["url"]) == (key, f"/initiatives/{key}/dashboard/")
        if before["run_id"] is not None:
            assert (alert["object_type"], alert["object_id"]) == ("run", str(before["run_id"]))
            assert alert["detail_url"] == f"/ops/jobs/{jobs_of_runs[before['run_id']]}/"
            assert alert["to_status"] == "failed"
        else:
            assert (alert["object_type"], alert["object_id"]) == ("kpi", str(before["kpi_id"]))
    # Content types (and with them permissions) followed the moved models, none left behind.
    labels = {(ct["app_label"], ct["model"]) for ct in now["django_content_type"]}
    assert {("jobs", "job"), ("jobs", "run"), ("jobs", "datasource")} <= labels
    assert not {("kpis", model) for model in MOVED_MODELS} & labels
    # A measurement still points at the run that computed it, whose job still has its KPI.
    kpis = {row["id"] for row in now["kpis_kpi"]}
    assert all(job["kpi_id"] in kpis for job in now["jobs_job"])
