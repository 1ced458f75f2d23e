"""A worker keeps its PostgreSQL connection to a data source between runs (jobs.sources):
reused while it works, closed after any error, when the source's URL changes, when idle too
long and at shutdown; each run still in its own read-only transaction with its timeout and
the role check. The job's SQL asks the server for its own backend pid to tell connections
apart."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg2
import pytest
from django.db import connection

from jobs import services, sources, tasks
from jobs.models import DataSource
from jobs.sources import SourceError, run_sql
from tests.jobs.helpers import pg_execute, postgres_url

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

PID = "SELECT pg_backend_pid()"


@pytest.fixture
def source(admin_user: Any, pg_scratch: tuple[str, str]) -> DataSource:
    url, _ = pg_scratch
    return services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)


def _pid(source: DataSource) -> int:
    return int(run_sql(source, PID, 5))


def _backends(admin_url: str) -> set[int]:
    with closing(psycopg2.connect(admin_url)) as raw, raw.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {row[0] for row in cursor.fetchall()}


def _gone(admin_url: str, pid: int, wait: float = 5) -> bool:
    """The backend has ended (a closed connection's backend exits a moment later)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if pid not in _backends(admin_url):
            return True
        time.sleep(0.05)
    return False


def test_a_connection_is_reused_across_runs(source):
    first = _pid(source)

    assert _pid(source) == first
    assert _pid(source) == first


def test_each_run_is_a_read_only_transaction_with_its_timeout_on_a_reused_connection(source):
    _pid(source)

    assert run_sql(source, "SELECT (current_setting('transaction_read_only') = 'on')::int", 5) == 1
    timeout = "SELECT extract(epoch FROM current_setting('statement_timeout')::interval)"
    assert run_sql(source, timeout, 7) == 7
    assert run_sql(source, timeout, 3) == 3
    with pytest.raises(SourceError, match="ran longer than 1 s"):
        run_sql(source, "SELECT 1 FROM pg_sleep(3)", 1)


def test_the_sandbox_refuses_writes_on_a_reused_connection(pg_admin_url, pg_scratch, source):
    # nextval passes check_select (a function call in a SELECT) and the role check (a
    # sequence is no table): only the read-only transaction refuses it.
    url, table = pg_scratch
    schema = table.split(".")[0]
    role = url.split("//")[1].split("@")[0]
    pg_execute(
        pg_admin_url,
        f"CREATE SEQUENCE {schema}.counter",
        f"GRANT USAGE, UPDATE ON SEQUENCE {schema}.counter TO {role}",
    )
    first = _pid(source)

    with pytest.raises(SourceError, match="tried to write; data sources are read-only"):
        run_sql(source, f"SELECT nextval('{schema}.counter')", 5)

    with closing(psycopg2.connect(pg_admin_url)) as raw, raw.cursor() as cursor:
        cursor.execute(f"SELECT is_called FROM {schema}.counter")  # noqa: S608
        assert cursor.fetchone() == (False,)
    assert _pid(source) != first  # the refused run's connection was not reused


def test_a_setting_a_query_changes_does_not_reach_the_next_run(source):
    _pid(source)
    run_sql(source, "SELECT length(set_config('search_path', 'nowhere', false))", 5)

    assert run_sql(source, "SELECT (current_setting('search_path') <> 'nowhere')::int", 5) == 1


def test_an_advisory_lock_a_query_takes_is_not_kept_in_the_pool(pg_admin_url, source):
    key = uuid.uuid4().int % 2**31
    pid = int(run_sql(source, f"SELECT pg_backend_pid() * pg_try_advisory_lock({key})::int", 5))

    with closing(psycopg2.connect(pg_admin_url)) as raw, raw.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", [pid]
        )
        assert cursor.fetchone() == (0,)
    assert _pid(source) == pid


def test_a_connection_is_closed_after_an_error(pg_admin_url, source):
    first = _pid(source)

    with pytest.raises(SourceError, match="22012"):
        run_sql(source, "SELECT 1 / 0", 5)

    assert _gone(pg_admin_url, first)
    assert _pid(source) != first


def test_a_connection_the_server_ended_while_idle_is_replaced(pg_admin_url, source):
    first = _pid(source)
    pg_execute(pg_admin_url, f"SELECT pg_terminate_backend({first})")
    assert _gone(pg_admin_url, first)

    # Nothing of the run had happened on it: the run goes on with a new connection.
    second = _pid(source)

    assert second != first
    assert _pid(source) == second


def test_a_changed_url_gets_a_new_connection_and_the_old_one_is_closed(
    pg_admin_url, admin_user, pg_scratch, source
):
    url, _ = pg_scratch
    first = _pid(source)

    source = services.data_source_save(
        user=admin_user,
        name="Reader",
        kind="database",
        url=f"{url}?application_name=kpi_pool_{uuid.uuid4().hex[:8]}",
        source=source,
    )
    second = _pid(source)

    assert second != first
    assert _gone(pg_admin_url, first)
    assert _pid(source) == second


def test_an_idle_connection_is_closed_at_the_next_run(pg_admin_url, monkeypatch, source):
    first = _pid(source)
    monkeypatch.setattr(sources, "POOL_IDLE_SECONDS", 0.0)

    second = _pid(source)

    assert second != first
    assert _gone(pg_admin_url, first)


def test_the_worker_shutdown_closes_the_pooled_connections(pg_admin_url, source):
    first = _pid(source)

    tasks.close_source_connections()

    assert _gone(pg_admin_url, first)
    assert _pid(source) != first


# The role check on a pooled connection: its attributes before every run, all of it on each
# new connection and when KPI_SQL_ROLE_CHECK_SECONDS have passed since the last time.


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sources, "_clock", clock)
    return clock


def test_a_role_made_superuser_is_refused_at_the_next_run_on_the_same_connection(
    pg_admin_url, pg_scratch, source, clock
):
    role = pg_scratch[0].split("//")[1].split("@")[0]
    _pid(source)

    pg_execute(pg_admin_url, f"ALTER ROLE {role} SUPERUSER")

    with pytest.raises(SourceError, match="is a superuser"):
        run_sql(source, "SELECT length(pg_read_file('/etc/passwd'))", 5)


def test_a_role_granted_more_later_is_refused_within_the_check_interval(
    pg_admin_url, pg_scratch, source, clock, settings
):
    settings.KPI_SQL_ROLE_CHECK_SECONDS = 60
    url, table = pg_scratch
    role = url.split("//")[1].split("@")[0]
    first = _pid(source)

    pg_execute(pg_admin_url, f"GRANT INSERT ON {table} TO {role}")
    clock.now += 59
    # Inside the interval the connection's last whole check stands (the documented window).
    assert _pid(source) == first
    clock.now += 1

    with pytest.raises(SourceError, match=r"may write to 1 table\(s\)"):
        _pid(source)
    assert _gone(pg_admin_url, first)
    # A new connection is checked at once, whatever the time.
    with pytest.raises(SourceError, match=r"may write to 1 table\(s\)"):
        _pid(source)


def test_with_a_zero_interval_the_whole_check_runs_before_every_run(
    pg_admin_url, pg_scratch, source, settings
):
    settings.KPI_SQL_ROLE_CHECK_SECONDS = 0
    url, table = pg_scratch
    role = url.split("//")[1].split("@")[0]
    _pid(source)

    pg_execute(pg_admin_url, f"GRANT pg_read_server_files TO {role}")

    with pytest.raises(SourceError, match="member of pg_read_server_files"):
        _pid(source)


@pytest.fixture
def second_reader(pg_admin_url: str, pg_scratch: tuple[str, str]) -> Iterator[str]:
    """Another read-only role's URL on the same database."""
    _, table = pg_scratch
    role = f"kpi_reader2_{uuid.uuid4().hex[:8]}"
    pg_execute(
        pg_admin_url,
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE ON SCHEMA {table.split('.')[0]} TO {role}",
        f"GRANT SELECT ON {table} TO {role}",
    )
    try:
        yield postgres_url(connection.settings_dict, user=role)
    finally:
        sources.connections_close()
        pg_execute(pg_admin_url, f"DROP OWNED BY {role}", f"DROP ROLE IF EXISTS {role}")


def test_two_sources_keep_a_connection_each(admin_user, source, second_reader):
    other = services.data_source_save(
        user=admin_user, name="Other", kind="database", url=second_reader
    )
    mine, theirs = _pid(source), _pid(other)

    assert mine != theirs
    assert (_pid(source), _pid(other)) == (mine, theirs)
    assert run_sql(other, "SELECT (current_user = session_user)::int", 5) == 1


def test_a_forked_child_leaves_the_parents_connection_alone(source):
    # A Celery pool process is forked from the worker: it must open its own connection, and
    # its exit must not end the parent's session.
    first = _pid(source)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        code = 0 if not sources._pool else 1
        os._exit(code)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert _pid(source) == first


# How a run uses its pooled connection: three round trips (begin, the query, the end), in
# autocommit mode with the transaction begun and ended by the run itself, and the connection
# back in the pool outside any transaction.


class _Counting(psycopg2.extensions.cursor):
    sent: list[str] = []

    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002  (psycopg2's name)
        type(self).sent.append(str(query))
        return super().execute(query, vars)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements (one round trip each) sent on the pooled connections opened from now."""
    opened = sources._open
    sent: list[str] = []
    monkeypatch.setattr(_Counting, "sent", sent)

    def counting(url: str, timeout: float) -> Any:
        connection = opened(url, timeout)
        connection.cursor_factory = _Counting
        return connection

    monkeypatch.setattr(sources, "_open", counting)
    return sent


def test_a_run_on_a_pooled_connection_is_three_round_trips(source, sent):
    _pid(source)  # opens the connection and checks the whole role
    sent.clear()

    assert run_sql(source, "SELECT 41 + 1", 5) == 42

    begin, query, end = sent
    assert begin.startswith("BEGIN READ ONLY; SET LOCAL statement_timeout = %s; ")
    assert "SELECT 41 + 1" in query
    assert end == "SELECT pg_advisory_unlock_all(); ROLLBACK"


def _server_state(admin_url: str, pid: int) -> tuple[str, int]:
    with closing(psycopg2.connect(admin_url)) as raw, raw.cursor() as cursor:
        cursor.execute(
            "SELECT a.state, (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid) "
            "FROM pg_stat_activity a WHERE a.pid = %s",
            [pid],
        )
        return cursor.fetchone()


def test_a_pooled_connection_waits_outside_any_transaction_and_holds_no_lock(pg_admin_url, source):
    key = uuid.uuid4().int % 2**31
    pid = int(run_sql(source, f"SELECT pg_backend_pid() * pg_try_advisory_lock({key})::int", 5))

    # Not "idle in transaction": the run's transaction was rolled back; no lock of any kind.
    assert _server_state(pg_admin_url, pid) == ("idle", 0)
    # The next run on it is a new read-only transaction again.
    assert run_sql(source, "SELECT (current_setting('transaction_read_only') = 'on')::int", 5) == 1
    assert _pid(source) == pid


def test_a_pooled_connection_found_in_a_transaction_is_replaced(pg_admin_url, source):
    # Never seen (every way back into the pool checks the connection is idle): a guard. A
    # BEGIN READ ONLY inside an open transaction would only warn, and READ ONLY not apply.
    first = _pid(source)
    (pooled,) = sources._pool.values()
    pooled.connection.cursor().execute("BEGIN")

    assert run_sql(source, "SELECT (current_setting('transaction_read_only') = 'on')::int", 5) == 1
    assert _gone(pg_admin_url, first)
    assert _pid(source) != first


def test_the_run_does_not_begin_on_a_connection_in_a_transaction(pg_scratch):
    url, _ = pg_scratch
    pooled = sources._Pooled(sources._open(url, 5))
    try:
        with pooled.connection.cursor() as cursor:
            cursor.execute("BEGIN")
            with pytest.raises(SourceError, match="not idle"):
                sources._begin(pooled, cursor, 5)
    finally:
        sources._close(pooled)
