from __future__ import annotations

import contextlib
import time
import uuid
from contextlib import closing
from typing import Any

import psycopg2
import pytest
from django.db import connection

from jobs import services
from jobs.models import DataSource
from jobs.sources import SourceError, TransientSourceError, check_select, run_sql
from tests.jobs.conftest import ORDERS
from tests.jobs.helpers import (
    postgres_url,
    sqlite_rows,
    sqlite_tables,
)

pytestmark = pytest.mark.django_db


# check_select


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select count(*) from orders ;  ", "select count(*) from orders"),
        ("SELECT 1;", "SELECT 1"),
        ("WITH x AS (SELECT 1 AS n) SELECT n FROM x", "WITH x AS (SELECT 1 AS n) SELECT n FROM x"),
    ],
)
def test_check_select_accepts_one_select(sql, expected):
    assert check_select(sql) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "empty"),
        (" ; ", "empty"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT 1; DELETE FROM orders", "one statement"),
        ("INSERT INTO orders VALUES (9, 1, 'x')", "Only a SELECT"),
        ("UPDATE orders SET amount = 0", "Only a SELECT"),
        ("DELETE FROM orders", "Only a SELECT"),
        ("DROP TABLE orders", "Only a SELECT"),
        ("CREATE TABLE t (n int)", "Only a SELECT"),
        ("PRAGMA table_info(orders)", "Only a SELECT"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "Only a SELECT"),
    ],
)
def test_check_select_refuses(sql, message):
    with pytest.raises(SourceError, match=message):
        check_select(sql)


# SQLite


def test_sqlite_select_returns_the_number(sqlite_source):
    assert run_sql(sqlite_source, "SELECT count(*) FROM orders", 5) == 3.0
    assert run_sql(sqlite_source, "SELECT sum(amount) FROM orders", 5) == 30.5
    assert run_sql(sqlite_source, "SELECT avg(amount) FROM orders;", 5) == pytest.approx(15.25)


def test_sqlite_cte_select_returns_the_number(sqlite_source):
    sql = "WITH card AS (SELECT * FROM orders WHERE channel = 'card') SELECT max(amount) FROM card"
    assert run_sql(sqlite_source, sql, 5) == 20.5


def test_sqlite_numeric_text_is_read_as_a_number(sqlite_source):
    assert run_sql(sqlite_source, "SELECT '12.5'", 5) == 12.5


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1; SELECT 2", "Only one statement"),
        ("SELECT 1; DELETE FROM orders", "Only one statement"),
        ("INSERT INTO orders VALUES (9, 1.0, 'x')", "Only a SELECT"),
        ("UPDATE orders SET amount = 0", "Only a SELECT"),
        ("DELETE FROM orders", "Only a SELECT"),
        ("DROP TABLE orders", "Only a SELECT"),
        ("REPLACE INTO orders VALUES (1, 0, 'x')", "Only a SELECT"),
        # A string that sqlparse reads as one literal (backslash escape) but SQLite splits.
        ("SELECT '\\'; DELETE FROM orders; --'", ""),
        ("SELECT amount FROM orders WHERE id = 99", "no row"),
        ("SELECT amount FROM orders", "exactly one"),
        ("SELECT id, amount FROM orders WHERE id = 1", "2 columns"),
        ("SELECT amount FROM orders WHERE id = 3", "no value (NULL)"),
        ("SELECT channel FROM orders WHERE id = 1", "a text value, not a number"),
        ("SELECT 1.0 / 0", "no value (NULL)"),
        ("SELECT x'00'", "a binary value"),
        ("SELECT * FROM no_such_table", "no such table"),
    ],
)
def test_sqlite_refusals_leave_the_data_unchanged(sqlite_source, warehouse, sql, message):
    with pytest.raises(SourceError) as excinfo:
        run_sql(sqlite_source, sql, 5)

    assert type(excinfo.value) is SourceError
    assert message in str(excinfo.value)
    assert sqlite_rows(warehouse) == ORDERS
    assert sqlite_tables(warehouse) == ["orders"]


def test_sqlite_many_rows_message_says_exactly_one(sqlite_source):
    with pytest.raises(SourceError, match="more than one row; it must return exactly one"):
        run_sql(sqlite_source, "SELECT id FROM orders", 5)


def test_sqlite_slow_query_is_stopped_by_the_timeout(sqlite_source, warehouse):
    sql = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        "SELECT count(*) FROM c"
    )
    started = time.monotonic()

    with pytest.raises(SourceError, match="longer than 1 s"):
        run_sql(sqlite_source, sql, 1)

    assert time.monotonic() - started < 5
    assert sqlite_rows(warehouse) == ORDERS


def test_sqlite_missing_file_fails_and_is_not_created(admin_user, tmp_path):
    missing = tmp_path / "nowhere.sqlite3"
    source = services.data_source_save(
        user=admin_user, name="Missing", kind="database", url=f"sqlite:///{missing}"
    )

    with pytest.raises(SourceError, match="Cannot open"):
        run_sql(source, "SELECT 1", 5)

    assert not missing.exists()


def test_sqlite_relative_url_is_refused(admin_user):
    source = services.data_source_save(
        user=admin_user, name="Relative", kind="database", url="sqlite://relative.db"
    )

    with pytest.raises(SourceError, match="sqlite:////absolute/path"):
        run_sql(source, "SELECT 1", 5)


def test_unreachable_postgres_is_transient(unreachable_source):
    with pytest.raises(TransientSourceError, match="Cannot connect"):
        run_sql(unreachable_source, "SELECT 1", 2)


def test_bad_query_is_refused_before_connecting(unreachable_source):
    # check_select runs first: a refused query is a permanent error, not a retry.
    with pytest.raises(SourceError) as excinfo:
        run_sql(unreachable_source, "DELETE FROM orders", 2)
    assert type(excinfo.value) is SourceError


# PostgreSQL: a scratch schema in the test database, written through its own connection
# (the test's own transaction would hide uncommitted rows from run_sql's connection). The
# data source logs in as a role that may only read it: a superuser source is refused.


def _pg_state(url: str, table: str) -> list[tuple[Any, ...]] | None:
    with closing(psycopg2.connect(url)) as raw, raw.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [table])
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT n, label FROM {table} ORDER BY n")  # noqa: S608
        return cursor.fetchall()


PG_ROWS = [(1, "a"), (2, "b"), (3, "c")]


@pytest.fixture
def pg_source(pg_scratch: tuple[str, str], admin_user: Any) -> DataSource:
    url, _ = pg_scratch
    return services.data_source_save(user=admin_user, name="Postgres", kind="database", url=url)


@pytest.mark.postgres
def test_postgres_select_returns_the_number(pg_scratch, pg_source):
    _, table = pg_scratch
    count, average, maximum = (
        f"SELECT count(*) FROM {table}",  # noqa: S608
        f"SELECT sum(n)::numeric / 4 FROM {table}",  # noqa: S608
        f"WITH x AS (SELECT n FROM {table}) SELECT max(n) FROM x",  # noqa: S608
    )
    assert run_sql(pg_source, count, 5) == 3.0
    assert run_sql(pg_source, average, 5) == 1.5  # a Decimal from the server
    assert run_sql(pg_source, maximum, 5) == 3.0


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("INSERT INTO {t} VALUES (9, 'z')", "Only a SELECT"),
        ("UPDATE {t} SET label = 'x'", "Only a SELECT"),
        ("DELETE FROM {t}", "Only a SELECT"),
        ("DROP TABLE {t}", "Only a SELECT"),
        ("TRUNCATE {t}", "Only a SELECT"),
        ("SELECT 1; DROP TABLE {t}", "Only one statement"),
        ("WITH x AS (DELETE FROM {t} RETURNING 1) SELECT count(*) FROM x", "inside a WITH"),
        ("WITH x AS (UPDATE {t} SET n = n + 10 RETURNING 1) SELECT count(*) FROM x", "WITH"),
        ("WITH x AS (INSERT INTO {t} VALUES (9, 'z') RETURNING 1) SELECT count(*) FROM x", "WITH"),
        ("SELECT n FROM {t} WHERE n = 1 FOR UPDATE", "locking clause"),
        ("SELECT n FROM {t}", "exactly one"),
        ("SELECT n FROM {t} WHERE n = 99", "no row"),
        ("SELECT n, label FROM {t} WHERE n = 1", "2 columns"),
        ("SELECT label FROM {t} WHERE n = 1", "not a number"),
        ("SELECT NULL::int", "no value (NULL)"),
        ("SELECT now()", "a date/time value"),
        ("SELECT true", "not a number"),
        ("SELECT 1/0", "refused"),
    ],
)
def test_postgres_refusals_leave_the_data_unchanged(pg_scratch, pg_source, template, message):
    url, table = pg_scratch

    with pytest.raises(SourceError) as excinfo:
        run_sql(pg_source, template.format(t=table), 5)

    assert type(excinfo.value) is SourceError
    assert message in str(excinfo.value)
    assert _pg_state(url, table) == PG_ROWS


@pytest.mark.postgres
@pytest.mark.parametrize(
    "template",
    [
        "SELECT '\\'; COMMIT; DROP TABLE {t}; --'",
        "SELECT '\\'; COMMIT; DELETE FROM {t}; --'",
        "SELECT '\\'; COMMIT; UPDATE {t} SET label = 'owned'; SELECT 1; --'",
    ],
)
def test_postgres_read_only_guard_cannot_be_escaped(pg_scratch, pg_source, template):
    # sqlparse reads '\'' as an escaped quote, PostgreSQL (standard_conforming_strings on)
    # does not: check_select sees one SELECT, the server runs several statements, and the
    # COMMIT ends the read-only transaction before the write.
    url, table = pg_scratch
    sql = template.format(t=table)

    with contextlib.suppress(SourceError):
        run_sql(pg_source, sql, 5)

    assert _pg_state(url, table) == PG_ROWS


@pytest.mark.postgres
def test_postgres_slow_query_is_stopped_by_the_timeout(pg_scratch, pg_source):
    url, table = pg_scratch
    started = time.monotonic()

    with pytest.raises(SourceError, match="longer than 1 s") as excinfo:
        run_sql(pg_source, "SELECT pg_sleep(5)", 1)

    assert type(excinfo.value) is SourceError
    assert time.monotonic() - started < 4
    assert _pg_state(url, table) == PG_ROWS


@pytest.mark.postgres
def test_postgres_wrong_database_is_a_transient_connection_error(admin_user):
    url = postgres_url(connection.settings_dict | {"NAME": f"no_such_db_{uuid.uuid4().hex[:6]}"})
    source = services.data_source_save(user=admin_user, name="Nope", kind="database", url=url)

    with pytest.raises(TransientSourceError):
        run_sql(source, "SELECT 1", 2)
