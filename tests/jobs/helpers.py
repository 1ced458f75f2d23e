"""Small helpers shared by the KPI job tests (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
from django.utils import timezone

from jobs import services
from jobs.models import Job, Run, Trigger


def set_next_run(job: Job, at: dt.datetime) -> None:
    """Put a job's next fire time where a test wants it (the dispatcher only reads the row)."""
    Job.objects.filter(pk=job.pk).update(next_run_at=at)
    job.refresh_from_db()


def scheduled_run(job: Job, *, now: dt.datetime | None = None) -> Run:
    """Make the job due and dispatch it: the queued scheduled run."""
    now = now or timezone.now()
    set_next_run(job, now - dt.timedelta(seconds=1))
    created = services.dispatch_due(now=now)
    assert len(created) == 1, created
    return Run.objects.get(pk=created[0])


def schedule_runs(job: Job) -> list[Run]:
    return list(job.runs.filter(trigger=Trigger.SCHEDULE).order_by("scheduled_for"))


def sqlite_rows(path: Path, table: str = "orders") -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608


def sqlite_tables(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        ]


def postgres_url(settings_dict: dict[str, Any], *, user: str | None = None) -> str:
    """A postgres:// URL for the database Django uses, as its user or as `user` (trust)."""
    user = quote(user if user is not None else settings_dict.get("USER") or "", safe="")
    password = "" if user != settings_dict.get("USER") else settings_dict.get("PASSWORD") or ""
    auth = user + (":" + quote(password, safe="") if password else "")
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{settings_dict['NAME']}"


def pg_execute(url: str, *statements: str) -> None:
    """Run statements on their own autocommit connection (seen at once by other sessions)."""
    with closing(psycopg2.connect(url)) as raw:
        raw.autocommit = True
        with raw.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def pg_drop_role(url: str, role: str) -> None:
    # Roles are cluster-wide: whatever a test granted or created goes with it.
    pg_execute(url, f'DROP OWNED BY "{role}"', f'DROP ROLE IF EXISTS "{role}"')
