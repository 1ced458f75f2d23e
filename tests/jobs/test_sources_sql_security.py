"""A SQL data source is not a way into the database server: the attacks, tried for real.

With a superuser source, `READ ONLY` did not stop a job's query from reading server files,
importing them as large objects or running a shell command through dblink, and the value came
back in the run error. Now the role is checked before saving and before every run, values
never appear in errors, a value's size is capped on the server, and writes inside the one
SELECT are refused at registration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from bizdevops import crypto
from bizdevops.errors import DomainError
from jobs import services
from jobs.datasource_roles import quote_ident
from jobs.models import DataSource, DataSourceKind
from jobs.sources import SourceError, check_database_role, check_select, run_sql
from tests.helpers import missing_service
from tests.jobs.helpers import pg_drop_role, pg_execute, postgres_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cr3t-v4lue"
# A value turned into a table name, so that the server's own message would carry it.
TABLE_NAME_LEAK = (
    f"SELECT length(query_to_xml('SELECT * FROM \"{SECRET}\"', true, false, '')::text)"  # noqa: E501, S608
)


def _stored_source(url: str, name: str = "Stored") -> DataSource:
    """A source as it sits in the table: saved before the role check existed, or its role
    changed after the save."""
    return DataSource.objects.create(
        name=name,
        kind=DataSourceKind.DATABASE,
        url_encrypted=crypto.encrypt(url),
        display_url=crypto.redact(url),
    )


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with closing(psycopg2.connect(url)) as raw, raw.cursor() as cursor:
        cursor.execute(f"SELECT n, label FROM {table} ORDER BY n")  # noqa: S608
        return cursor.fetchall()


def _large_objects(url: str) -> int:
    with closing(psycopg2.connect(url)) as raw, raw.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_largeobject_metadata")
        return int(cursor.fetchone()[0])


def _conninfo(settings_dict: dict[str, Any]) -> str:
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"dbname={settings_dict['NAME']} user={settings_dict['USER']} host={host} port={port}"


PG_ROWS = [(1, "a"), (2, "b"), (3, "c")]


@pytest.fixture
def dblink(pg_admin_url: str) -> Iterator[str]:
    """dblink installed in a schema of its own in the test database; the schema's name."""
    with closing(psycopg2.connect(pg_admin_url)) as raw, raw.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'dblink'")
        if cursor.fetchone() is None:
            missing_service("the dblink extension is not installable on this server")
    schema = f"kpi_dblink_{uuid.uuid4().hex[:8]}"
    pg_execute(pg_admin_url, f"CREATE SCHEMA {schema}", f"CREATE EXTENSION dblink SCHEMA {schema}")
    try:
        yield schema
    finally:
        pg_execute(pg_admin_url, "DROP EXTENSION dblink", f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def role(pg_admin_url: str, pg_scratch: tuple[str, str]) -> Iterator[str]:
    """A plain login role that may read the scratch table; tests add what they refuse."""
    _, table = pg_scratch
    name = f"kpi_role_{uuid.uuid4().hex[:10]}"
    pg_execute(
        pg_admin_url,
        f"CREATE ROLE {name} LOGIN",
        f"GRANT USAGE ON SCHEMA {table.split('.')[0]} TO {name}",
        f"GRANT SELECT ON {table} TO {name}",
    )
    try:
        yield name
    finally:
        pg_drop_role(pg_admin_url, name)


# The attacks through a superuser source, reproduced.


@pytest.mark.postgres
def test_a_superuser_source_cannot_read_server_files_at_run(pg_admin_url):
    source = _stored_source(pg_admin_url)

    with pytest.raises(SourceError) as excinfo:
        run_sql(source, "SELECT pg_read_file('/etc/passwd')", 5)

    assert "root:" not in str(excinfo.value)
    assert "is a superuser" in str(excinfo.value)


@pytest.mark.postgres
def test_a_superuser_source_cannot_import_files_as_large_objects(pg_admin_url):
    source = _stored_source(pg_admin_url)
    before = _large_objects(pg_admin_url)

    with pytest.raises(SourceError, match="is a superuser"):
        run_sql(source, "SELECT lo_import('/etc/hostname')", 5)

    assert _large_objects(pg_admin_url) == before


@pytest.mark.postgres
def test_a_superuser_source_cannot_run_a_program_through_dblink(pg_admin_url, pg_scratch, dblink):
    # dblink opens a second connection, outside the READ ONLY transaction: COPY FROM PROGRAM
    # ran `echo 77` on the database server and wrote its output into the table.
    url, table = pg_scratch
    source = _stored_source(pg_admin_url)
    remote = f"COPY {table} (n) FROM PROGRAM ''echo 77''"
    sql = (
        f"SELECT length({dblink}.dblink_exec('{_conninfo(connection.settings_dict)}', '{remote}'))"
    )

    with pytest.raises(SourceError, match="is a superuser"):
        run_sql(source, sql, 5)

    assert _rows(url, table) == PG_ROWS


@pytest.mark.postgres
def test_saving_a_superuser_source_is_refused(admin_user, pg_admin_url):
    with pytest.raises(DomainError) as excinfo:
        services.data_source_save(
            user=admin_user, name="Superuser", kind="database", url=pg_admin_url
        )

    assert excinfo.value.field == "url"
    assert "is a superuser" in excinfo.value.message
    assert "datasource_role" in excinfo.value.message
    assert not DataSource.objects.exists()


@pytest.mark.postgres
def test_a_superuser_url_in_an_environment_variable_is_refused(
    admin_user, pg_admin_url, monkeypatch
):
    monkeypatch.setenv("KPI_TEST_SUPERUSER_URL", pg_admin_url)

    with pytest.raises(DomainError) as excinfo:
        services.data_source_save(
            user=admin_user, name="Env", kind="database", url_env="KPI_TEST_SUPERUSER_URL"
        )

    assert excinfo.value.field == "url_env"
    assert "is a superuser" in excinfo.value.message


@pytest.mark.postgres
def test_a_role_made_superuser_after_saving_is_refused_at_run(admin_user, pg_admin_url, role):
    url = postgres_url(connection.settings_dict, user=role)
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)
    assert run_sql(source, "SELECT 1", 5) == 1.0

    pg_execute(pg_admin_url, f"ALTER ROLE {role} SUPERUSER")

    with pytest.raises(SourceError, match="is a superuser"):
        run_sql(source, "SELECT length(pg_read_file('/etc/passwd'))", 5)


@pytest.fixture
def superuser_role(pg_admin_url: str) -> Iterator[str]:
    name = f"kpi_super_{uuid.uuid4().hex[:10]}"
    pg_execute(pg_admin_url, f"CREATE ROLE {name} NOLOGIN SUPERUSER")
    try:
        yield name
    finally:
        pg_drop_role(pg_admin_url, name)


@pytest.mark.postgres
def test_a_member_of_a_superuser_role_is_refused_at_save_and_at_run(
    admin_user, pg_admin_url, role, superuser_role
):
    # A NOINHERIT member of a superuser role looked like a plain reader, and its query could
    # SET ROLE to the superuser and read server files.
    url = postgres_url(connection.settings_dict, user=role)
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)
    pg_execute(pg_admin_url, f"ALTER ROLE {role} NOINHERIT", f"GRANT {superuser_role} TO {role}")

    with pytest.raises(SourceError, match=f"is a member of {superuser_role}"):
        run_sql(
            source,
            f"SELECT length(set_config('role', '{superuser_role}', true)) * 0"
            " + length(pg_read_file('/etc/passwd'))",
            5,
        )
    with pytest.raises(DomainError, match=f"is a member of {superuser_role}"):
        services.data_source_save(user=admin_user, name="Again", kind="database", url=url)


@pytest.mark.postgres
def test_a_url_that_sets_the_role_is_refused(admin_user, pg_admin_url, role):
    # A superuser login with `options=-c role=<reader>` ran the check as the reader, and the
    # query could switch back with set_config('role', 'none', true).
    url = pg_admin_url + ("&" if "?" in pg_admin_url else "?") + f"options=-c%20role%3D{role}"

    with pytest.raises(DomainError, match="may not set options"):
        services.data_source_save(user=admin_user, name="Options", kind="database", url=url)
    assert not DataSource.objects.exists()


@pytest.mark.postgres
def test_a_url_postgresql_refuses_is_a_field_error(admin_user, pg_admin_url):
    # libpq's "invalid dsn" (a ProgrammingError) was a 500.
    url = pg_admin_url + ("&" if "?" in pg_admin_url else "?") + "no_such_parameter=1"

    with pytest.raises(DomainError, match="not valid") as excinfo:
        services.data_source_save(user=admin_user, name="Bad", kind="database", url=url)
    assert excinfo.value.field == "url"


# Every role attribute and grant that reaches past reading is refused, and says which.


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ("ALTER ROLE {r} SUPERUSER", "is a superuser"),
        ("ALTER ROLE {r} CREATEROLE", "may create roles (CREATEROLE)"),
        ("ALTER ROLE {r} REPLICATION", "REPLICATION"),
        ("ALTER ROLE {r} BYPASSRLS", "BYPASSRLS"),
        ("GRANT pg_execute_server_program TO {r}", "member of pg_execute_server_program"),
        ("GRANT pg_read_server_files TO {r}", "member of pg_read_server_files"),
        ("GRANT pg_write_server_files TO {r}", "member of pg_write_server_files"),
        ("GRANT pg_write_all_data TO {r}", "member of pg_write_all_data"),
        ("GRANT pg_read_all_data TO {r}", "member of pg_read_all_data"),
        # Through a role it is a member of, not only directly.
        ("GRANT pg_monitor TO {r}", "member of pg_read_all_stats"),
        ("GRANT INSERT ON {t} TO {r}", "may write to 1 table(s) ({t})"),
        ("GRANT UPDATE (label) ON {t} TO {r}", "may write to 1 table(s)"),
        ("GRANT DELETE ON {t} TO {r}", "may write to 1 table(s)"),
        ("GRANT TRUNCATE ON {t} TO {r}", "may write to 1 table(s)"),
        ("ALTER TABLE {t} OWNER TO {r}", "may write to 1 table(s)"),
        ("GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {r}", "may execute pg_read_file"),
        ("GRANT EXECUTE ON FUNCTION lo_import(text) TO {r}", "may execute lo_import"),
    ],
)
def test_a_role_that_reaches_past_reading_is_refused_at_save_and_at_run(
    admin_user, pg_admin_url, pg_scratch, role, grant, problem
):
    _, table = pg_scratch
    url = postgres_url(connection.settings_dict, user=role)
    pg_execute(pg_admin_url, grant.format(r=role, t=table))
    problem = problem.format(t=table)

    with pytest.raises(DomainError) as excinfo:
        services.data_source_save(user=admin_user, name="Risky", kind="database", url=url)
    assert problem in excinfo.value.message
    assert role in excinfo.value.message
    assert not DataSource.objects.exists()

    with pytest.raises(SourceError, match="A data source must log in as a role that can only"):
        run_sql(_stored_source(url), f"SELECT count(*) FROM {table}", 5)  # noqa: S608


@pytest.mark.postgres
def test_a_role_that_may_call_dblink_is_refused_until_it_is_revoked(
    admin_user, pg_admin_url, role, dblink
):
    # dblink is executable by PUBLIC once installed: connections from the database server to
    # any host and port, with any password the query knows.
    url = postgres_url(connection.settings_dict, user=role)
    with pytest.raises(SourceError, match="may execute dblink"):
        check_database_role(url)

    pg_execute(pg_admin_url, f"REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {dblink} FROM PUBLIC")
    check_database_role(url)
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)

    with pytest.raises(SourceError, match="42501") as excinfo:
        run_sql(
            source,
            f"SELECT length({dblink}.dblink_exec('{_conninfo(connection.settings_dict)}', "
            "'SELECT 1'))",
            5,
        )
    assert type(excinfo.value) is SourceError


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT length(pg_read_file('/etc/passwd'))",
        "SELECT lo_import('/etc/hostname')",
        "SELECT count(*) FROM pg_ls_dir('.')",
    ],
)
def test_a_reader_role_cannot_reach_server_files(admin_user, pg_admin_url, pg_scratch, sql):
    url, _ = pg_scratch
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)
    before = _large_objects(pg_admin_url)

    with pytest.raises(SourceError, match="42501: insufficient privilege"):
        run_sql(source, sql, 5)

    assert _large_objects(pg_admin_url) == before


@pytest.mark.postgres
def test_an_unreachable_server_does_not_stop_the_save_and_the_run_checks(admin_user):
    # Documented choice: the role cannot be checked without a connection, and the URL may be
    # one only the workers reach; every run checks it before the query.
    source = services.data_source_save(
        user=admin_user, name="Later", kind="database", url="postgres://postgres@127.0.0.1:1/x"
    )
    assert source.pk is not None


# Values never come back in errors.


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"SELECT '{SECRET}'", "The query (column 1) gave a text value, not a number."),
        (f"SELECT '{SECRET}'::integer", "(22P02: invalid text representation)"),
        (
            TABLE_NAME_LEAK,
            "(42P01: undefined table)",
        ),
        (f"SELECT ARRAY['{SECRET}']", "a list"),
    ],
)
def test_postgres_errors_never_carry_values(pg_scratch, admin_user, sql, message):
    url, _ = pg_scratch
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)

    with pytest.raises(SourceError) as excinfo:
        run_sql(source, sql, 5)

    assert SECRET not in str(excinfo.value)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"SELECT '{SECRET}'", "gave a text value"),
        # SQLite quotes the path it could not read: here a value the query computed.
        (f"SELECT json_extract('{{}}', '{SECRET}')", "(SQLITE_ERROR)"),
        (f"SELECT json_extract('{SECRET}', '$.a')", "(SQLITE_ERROR)"),
    ],
)
def test_sqlite_errors_never_carry_values(sqlite_source, sql, message):
    with pytest.raises(SourceError) as excinfo:
        run_sql(sqlite_source, sql, 5)

    assert SECRET not in str(excinfo.value)
    assert message in str(excinfo.value)


def test_sqlite_errors_about_the_query_itself_are_shown(sqlite_source):
    with pytest.raises(SourceError, match="no such table: nowhere"):
        run_sql(sqlite_source, "SELECT count(*) FROM nowhere", 5)


# A huge value cannot blow up the worker.


def _peak_rss_growth(kind: str, url: str, sql: str) -> dict[str, Any]:
    """Run the source in a fresh Python process; its peak RSS before and after, in KiB."""
    script = f"""
import json, resource, sys
import django
django.setup()
from jobs import sources
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sources._run_{kind}({url!r}, {sql!r}, 30)
    error = ""
except sources.SourceError as e:
    error = str(e)[:300]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before": before, "after": after, "error": error}}))
"""
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "bizdevops.settings",
        "DEBUG": "1",
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


@pytest.mark.postgres
def test_a_huge_postgres_value_is_refused_and_the_worker_stays_small(pg_scratch):
    url, _ = pg_scratch

    result = _peak_rss_growth("postgres", url, "SELECT repeat('x', 50000000)")

    assert "more than the 65536 bytes allowed (KPI_SQL_MAX_BYTES)" in result["error"]
    # The 50 MB value never crosses the wire (old code: +100 MB and more).
    assert result["after"] - result["before"] < 20_000, result


def test_a_huge_sqlite_value_is_refused_and_the_worker_stays_small(warehouse):
    result = _peak_rss_growth(
        "sqlite", f"sqlite:///{warehouse}", "SELECT length(randomblob(50000000) || 'x')"
    )

    assert "larger than the 65536 bytes allowed (KPI_SQL_MAX_BYTES)" in result["error"]
    assert result["after"] - result["before"] < 20_000, result


@pytest.mark.postgres
def test_a_value_under_the_cap_still_counts(pg_scratch, admin_user, settings):
    settings.KPI_SQL_MAX_BYTES = 10
    url, _ = pg_scratch
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)

    assert run_sql(source, "SELECT 123456789", 5) == 123456789.0
    with pytest.raises(SourceError, match="value of 11 bytes"):
        run_sql(source, "SELECT 12345678901", 5)


@pytest.mark.postgres
def test_a_trailing_comment_or_percent_sign_does_not_break_the_wrapper(pg_scratch, admin_user):
    url, table = pg_scratch
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)

    assert run_sql(source, f"SELECT count(*) FROM {table} -- all of them", 5) == 3.0  # noqa: S608
    sql = f"SELECT count(*) FROM {table} WHERE label LIKE '%'"  # noqa: S608
    assert run_sql(source, sql, 5) == 3.0


# Writes inside the one SELECT are refused when the job is registered.


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WITH x AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM x", "DELETE is not allowed"),
        ("WITH x AS (UPDATE t SET n = 1 RETURNING 1) SELECT count(*) FROM x", "UPDATE is not"),
        ("WITH x AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT 1", "INSERT is not allowed"),
        (
            "WITH x AS (SELECT 1), y AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM y",
            "not even inside a WITH",
        ),
        (
            "WITH x AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE) SELECT 1",
            "MERGE is not allowed",
        ),
        ("SELECT n INTO newtable FROM t", "SELECT ... INTO creates a table"),
        ("SELECT n FROM t FOR UPDATE", "locking clause"),
        ("SELECT n FROM t FOR NO KEY UPDATE", "locking clause"),
        ("SELECT n FROM t FOR SHARE", "locking clause"),
        ("select n from t for key share nowait", "locking clause"),
    ],
)
def test_check_select_refuses_writes_at_any_depth(sql, message):
    with pytest.raises(SourceError, match="The query may only read") as excinfo:
        check_select(sql)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT replace(label, 'a', 'b') FROM t",
        "SELECT count(*) FROM t WHERE label = 'delete'",
        'SELECT "update" FROM t',
        "SELECT substring(label FROM 1 FOR 2) FROM t",
        "WITH x AS (SELECT 1 AS n) SELECT n FROM x -- update later",
    ],
)
def test_check_select_accepts_reads_that_mention_the_words(sql):
    assert check_select(sql) == sql


def test_registering_a_data_modifying_cte_is_refused(ops_job, engineer, sqlite_source):
    with pytest.raises(DomainError) as excinfo:
        services.job_update(
            job=ops_job,
            user=engineer,
            source_kind="sql",
            data_source=sqlite_source,
            sql="WITH x AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM x",
        )

    assert excinfo.value.field == "sql"
    assert "DELETE is not allowed" in excinfo.value.message
    ops_job.refresh_from_db()
    assert ops_job.sql == ""


# The least-privilege role: `manage.py datasource_role`.


def _command(*args: str) -> tuple[str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    call_command("datasource_role", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_datasource_role_prints_the_sql_and_a_password_once():
    out, err = _command("--name", "bizdevops_reader", "--database", "warehouse")

    assert 'CREATE ROLE "bizdevops_reader" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE' in out
    assert (
        "NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT 10 PASSWORD E'SCRAM-SHA-256$" in out
    )
    assert """ALTER ROLE "bizdevops_reader" SET statement_timeout = E'60s';""" in out
    assert "SET idle_in_transaction_session_timeout = E'60s';" in out
    assert 'GRANT CONNECT ON DATABASE "warehouse" TO "bizdevops_reader";' in out
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "bizdevops_reader";' in out
    password = err.split("(shown once): ", 1)[1].strip()
    assert len(password) >= 24
    assert password not in out


def test_datasource_role_quotes_names():
    out, _ = _command(
        "--name",
        'x"; DROP ROLE postgres; --',
        "--database",
        "w",
        "--schema",
        "a'b",
        "--future-tables-of",
        "etl",
        "--password",
        "it's\\secret",
    )

    assert 'CREATE ROLE "x""; DROP ROLE postgres; --" LOGIN' in out
    assert 'IN SCHEMA "a\'b" TO' in out
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE "etl" IN SCHEMA "a\'b" GRANT SELECT ON TABLES' in out
    assert "it's" not in out


@pytest.mark.postgres
def test_datasource_role_apply_makes_a_role_that_passes_and_only_reads(
    admin_user, pg_admin_url, pg_scratch
):
    _, table = pg_scratch
    schema = table.split(".")[0]
    name = f'kpi_made_{uuid.uuid4().hex[:8]}"x'
    database = connection.settings_dict["NAME"]
    try:
        out, _ = _command(
            "--name", name, "--database", database, "--schema", schema,
            "--password", "pw-for-the-test", "--connection-limit", "3",
            "--statement-timeout", "5s", "--apply", "--admin-url", pg_admin_url,
        )  # fmt: skip
        assert "created" in out
        url = postgres_url(connection.settings_dict, user=name)

        check_database_role(url)
        source = services.data_source_save(user=admin_user, name="Made", kind="database", url=url)
        assert run_sql(source, f"SELECT count(*) FROM {table}", 5) == 3.0  # noqa: S608

        with closing(psycopg2.connect(url)) as raw, raw.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("5s",)
            cursor.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
            assert cursor.fetchone() == (3,)
            for sql in (
                f"SET TRANSACTION READ WRITE; INSERT INTO {table} VALUES (9, 'z')",  # noqa: S608
                f"SET TRANSACTION READ WRITE; DELETE FROM {table}",  # noqa: S608
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT lo_import('/etc/hostname')",
                f"SET TRANSACTION READ WRITE; CREATE TABLE {schema}.mine (n int)",
            ):
                raw.rollback()
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cursor.execute(sql)

        again, _ = _command(
            "--name", name, "--database", database, "--schema", schema,
            "--password", "pw2", "--apply", "--admin-url", pg_admin_url,
        )  # fmt: skip
        assert "reset" in again
    finally:
        pg_execute(pg_admin_url, f"DROP OWNED BY {quote_ident(name)}")
        pg_execute(pg_admin_url, f"DROP ROLE IF EXISTS {quote_ident(name)}")


def test_the_compose_warehouse_creates_the_role_the_command_prints():
    script = (ROOT / "deploy" / "postgres" / "20-warehouse.sh").read_text()
    out, _ = _command("--name", "bizdevops_reader", "--database", "warehouse")

    for statement in out.strip().splitlines():
        if statement.startswith("CREATE ROLE"):
            statement = statement.split(" PASSWORD ", 1)[0] + " PASSWORD :'reader_password';"
        assert statement in script


# The query cannot climb out of the statement that caps its value.


@pytest.mark.postgres
def test_a_query_closing_our_parentheses_to_reach_the_top_level_is_a_syntax_error(pg_scratch):
    # Two parentheses closed: in the value statement alone it would reach the top level and
    # add an uncapped value through UNION ALL (it did, tried by hand); the statement sent with
    # it, where the query is one parenthesis deep, does not parse, so nothing runs.
    url, _ = pg_scratch
    source = _stored_source(url)
    sql = (
        "SELECT 'a') AS q0(kpi_value) OFFSET 0) AS q UNION ALL "
        "SELECT repeat('x', 100000), 1 FROM (SELECT * FROM (SELECT 'b'"
    )

    with pytest.raises(SourceError, match="42601: syntax error"):
        run_sql(source, sql, 5)


@pytest.mark.postgres
def test_a_query_closing_one_of_our_parentheses_stays_under_the_cap(pg_scratch):
    # One parenthesis closed: the query reaches into our subquery, and its rows still go
    # through the cap.
    url, _ = pg_scratch
    source = _stored_source(url)
    sql = "SELECT 'a' AS kpi_value) AS a UNION ALL SELECT repeat('x', 100000) FROM (SELECT 1"

    with pytest.raises(SourceError, match="a value of 100000 bytes, more than the 65536"):
        run_sql(source, sql, 5)
