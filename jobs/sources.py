"""Where a job's number comes from: a read-only SQL query, an HTTP GET with a JSON path, or a
named Python calculation. Each returns one float or raises SourceError (permanent: the run
fails) or TransientSourceError (the run is retried)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions
import sqlparse
from django.conf import settings
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

from bizdevops import crypto, http
from bizdevops.db import CONNECTION_LOST_SQLSTATES
from jobs import datasource_roles
from jobs.models import DataSourceKind, SourceKind

if TYPE_CHECKING:
    from jobs.models import DataSource, Job

T = TypeVar("T")


class SourceError(Exception):
    """The source cannot give a number: the run fails with this message."""


class TransientSourceError(SourceError):
    """A passing failure (connection refused, timeout of the network): worth a retry."""


def data_source_url(source: DataSource) -> str:
    if source.url_env:
        url = crypto.from_env(source.url_env)
        if not url:
            raise SourceError(f"The environment variable {source.url_env} is not set.")
        return url
    return crypto.decrypt(source.url_encrypted)


def describe(value: Any) -> str:
    """What kind of value this is, in words: errors name the type, never the value (a run
    error is seen by more people than the data, and is a channel far wider than a number)."""
    if value is None:
        return "no value (NULL)"
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, str):
        return "a text value"
    if isinstance(value, bytes | bytearray | memoryview):
        return "a binary value"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "a date/time value"
    if isinstance(value, dt.timedelta):
        return "an interval"
    if isinstance(value, dict):
        return "an object (dict)"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a value of type {type(value).__name__}"


def as_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise SourceError(f"{where} gave {describe(value)}, not a number.")
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise SourceError(f"{where} gave {describe(value)}, not a number.") from None
    else:
        raise SourceError(f"{where} gave {describe(value)}, not a number.")
    if not math.isfinite(number):
        raise SourceError(f"{where} gave an infinite or NaN number, not a finite number.")
    return number


# Inside the one statement, at any depth (a WITH clause included): words that write or lock.
WRITE_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
LOCK_STRENGTHS = frozenset({"UPDATE", "SHARE", "NO", "KEY"})


def _refuse_writes_inside(statement: sqlparse.sql.Statement) -> None:
    words = [
        token
        for token in statement.flatten()
        if not token.is_whitespace and token.ttype not in sqlparse.tokens.Comment
    ]
    for index, token in enumerate(words):
        if token.ttype not in sqlparse.tokens.Keyword:  # Keyword.DML and .DDL are inside
            continue
        word = token.normalized.upper()
        following = words[index + 1].normalized.upper() if index + 1 < len(words) else ""
        if word == "FOR" and following in LOCK_STRENGTHS:
            raise SourceError(
                "The query may only read: a locking clause (FOR UPDATE, FOR SHARE) is not allowed."
            )
        if word in WRITE_KEYWORDS:
            raise SourceError(
                f"The query may only read: {word} is not allowed, not even inside a WITH clause."
            )
        if word == "INTO":
            raise SourceError(
                "The query may only read: SELECT ... INTO creates a table and is not allowed."
            )
        if token.ttype in sqlparse.tokens.DDL:
            raise SourceError(f"The query may only read: {word} is not allowed.")


def check_select(sql: str) -> str:
    """One SELECT (or WITH ... SELECT) statement that only reads, else SourceError.

    No semicolon is allowed but one at the end, not even inside a string literal: parsers
    disagree about quoting (sqlparse reads `\\'` as an escaped quote, PostgreSQL does not), and
    a second statement could `COMMIT` the read-only transaction and write. Without a
    semicolon the server cannot see a second statement at all. A data-modifying WITH, a
    `SELECT ... INTO` and a locking clause are refused here, at registration; the read-only
    transaction would refuse them at run time too.
    """
    query = (sql or "").strip()
    while query.endswith(";"):
        query = query[:-1].rstrip()
    if not query:
        raise SourceError("The query is empty.")
    if ";" in query:
        raise SourceError("Only one statement is allowed (no ';' inside the query).")
    _check_statement(query)
    return query


@functools.lru_cache(maxsize=1024)
def _check_statement(query: str) -> None:
    # Every run checks its job's SQL again (the stored text may predate a rule); parsing it
    # took 1 to 3 ms of each run. A pure function of the text, so its answer is kept: a
    # refusal raises and is not kept (lru_cache keeps only returned values).
    statements = [s for s in sqlparse.parse(query) if s.value.strip()]
    if len(statements) != 1 or statements[0].get_type() != "SELECT":
        raise SourceError("Only a SELECT query is allowed.")
    _refuse_writes_inside(statements[0])


def _one_number(rows: list[tuple[Any, ...]], columns: int) -> float:
    if columns != 1:
        raise SourceError(f"The query returned {columns} columns; it must return exactly one.")
    if not rows:
        raise SourceError("The query returned no row; it must return exactly one number.")
    if len(rows) > 1:
        raise SourceError("The query returned more than one row; it must return exactly one.")
    return as_number(rows[0][0], "The query (column 1)")


def run_sql(source: DataSource, sql: str, timeout: float) -> float:
    query = check_select(sql)
    url = data_source_url(source)
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return _run_postgres(url, query, timeout, source.pk)
    if scheme == "sqlite":
        return _run_sqlite(url, query, timeout)
    raise SourceError(f"Unsupported database scheme {scheme!r} (postgres or sqlite).")


POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})


def _refuse_privileged_role(
    cursor: Any, problems_of: Callable[[Any], tuple[str, list[str]]] | None = None
) -> None:
    # Looked up at each call: the tests replace role_problems to end a backend mid-check.
    name, problems = (problems_of or datasource_roles.role_problems)(cursor)
    if problems:
        raise SourceError(
            f"The data source logs in as the PostgreSQL role {name!r}, which "
            f"{'; '.join(problems)}. A data source must log in as a role that can only read: "
            "see `manage.py datasource_role`."
        )


def _connect_postgres(url: str, timeout: float) -> Any:
    # `options` (e.g. `-c role=...`) and `service` (a file that may set options) would make the
    # session run as another role than the one that logs in.
    if {"options", "service"} & set(parse_qs(urlsplit(url).query)):
        raise SourceError("A data source URL may not set options or service.")
    try:
        return psycopg2.connect(url, connect_timeout=max(1, int(timeout)))
    except psycopg2.OperationalError as error:
        raise TransientSourceError(f"Cannot connect to the database: {error}".strip()) from None
    except psycopg2.ProgrammingError as error:  # libpq refused the URL itself
        raise SourceError(f"The database URL is not valid: {error}".strip()) from None


def check_database_role(url: str, timeout: float = 10) -> None:
    """Refuse (SourceError) a PostgreSQL URL whose role may do more than read; a server that
    cannot be reached is a TransientSourceError. Other schemes pass: SQLite opens read-only."""
    if urlsplit(url).scheme not in POSTGRES_SCHEMES:
        return
    connection = _connect_postgres(url, timeout)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            _refuse_privileged_role(cursor)
    except psycopg2.Error as error:
        raise _database_error(error, connection, "The database refused the role check") from None
    finally:
        connection.close()


def _database_error(error: psycopg2.Error, connection: Any, refused: str) -> SourceError:
    """A lost connection or a failing server is worth a retry; a refusal of the SQL is not."""
    code = error.pgcode or ""
    if (
        connection.closed
        or isinstance(error, psycopg2.InterfaceError)
        or (isinstance(error, psycopg2.OperationalError) and not code)
        or code.startswith(CONNECTION_LOST_SQLSTATES)
    ):
        # Without a SQLSTATE the message is the client's own (libpq, psycopg2): it says what
        # became of the connection and carries no data.
        first_line = str(error).strip().partition("\n")[0]
        reason = _sqlstate(code) if code else f": {first_line}"
        return TransientSourceError(f"The connection to the database was lost{reason}.")
    if isinstance(error, psycopg2.OperationalError):
        return TransientSourceError(_server_refused(error, "The database failed"))
    return SourceError(_server_refused(error, refused))


def _sqlstate(code: str) -> str:
    name = (psycopg2.errorcodes.lookup(code) or "").lower().replace("_", " ") if code else ""
    return f" ({code}: {name})" if name else f" ({code})" if code else ""


def _server_refused(error: psycopg2.Error, what: str) -> str:
    """The SQLSTATE and its name, not the server's text: that text can carry data (`invalid
    input syntax for type integer: "<a value>"`, or a value turned into a table name through
    query_to_xml)."""
    return (
        f"{what}{_sqlstate(error.pgcode or '')}. Run the query in a SQL client as the same role "
        "to see the server's message."
    )


def _wrapped(query: str, max_bytes: int) -> str:
    """The run's query as the server is sent it: two statements in one round trip, of which
    the client gets the second one's rows.

    The second one is the value: the server measures each value and sends NULL in place of
    one that is too big, so no oversized value ever crosses the wire; LIMIT 2 lets at most
    two rows through; `p.*` adds the query's columns from a copy under LIMIT 0 (planned, never
    executed: NULLs), so the column count comes with the rows. The user's query sits after
    our select list (whatever it does to the FROM clause, the cap stays) and on lines of its
    own (a trailing `--` comment cannot swallow the closing parenthesis). OFFSET 0 keeps the
    value computed once per row.

    The first one returns nothing and runs nothing (LIMIT 0); it is there for its parse. The
    whole string is parsed before any of it runs, and there the query sits inside one
    parenthesis only: a query that closes more parentheses than it opened, so as to reach the
    value statement's top level (a `UNION ALL` of an uncapped value, an own LIMIT), is a
    syntax error there and nothing runs. In the value statement it is two parentheses deep,
    so it can reach one level up at most, inside our subqueries: the cap, the LIMIT 2 and the
    LIMIT 0 stay out of its reach. The query has no `;` (check_select), so it cannot add
    statements to the string.
    """
    # Running the user's query is the point: check_select has vetted it.
    cap = int(max_bytes)
    return (
        f"SELECT * FROM (\n{query}\n) AS q LIMIT 0;\n"  # noqa: S608
        f"SELECT CASE WHEN octet_length(q.kpi_value::text) > {cap} THEN NULL "
        "ELSE q.kpi_value END, octet_length(q.kpi_value::text), p.* "
        f"FROM (SELECT * FROM (\n{query}\n) AS q0(kpi_value) OFFSET 0) AS q "
        f"LEFT JOIN (SELECT * FROM (\n{query}\n) AS p0 LIMIT 0) AS p ON true "
        "LIMIT 2"
    )


# Pooled connections, one per data source URL in each worker process. Each run is still a
# transaction of its own (READ ONLY, the statement timeout, the role check) that is rolled
# back; a connection is closed, never reused, after any error, when its data source's URL
# changes, after POOL_IDLE_SECONDS unused and when the worker process ends. A run takes the
# connection out of the pool while it uses it, so two threads never share one.
#
# A pooled connection is in autocommit mode and each run says BEGIN READ ONLY itself: the
# BEGIN travels with the run's settings and the role lookup (psycopg2 would send its own
# BEGIN in a round trip of its own), and the rollback with the unlock of advisory locks. So a
# run is three round trips: begin, the query, the end. The client's view of the server's
# transaction state (libpq's, from every answer of the server) is checked on both sides: a
# run begins only on a connection that is in no transaction, and its query is sent only
# inside the transaction it began; a connection goes back to the pool only outside any.
POOL_IDLE_SECONDS = 300.0
_clock = time.monotonic  # (the tests move it forward)
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_IN_TRANSACTION = psycopg2.extensions.TRANSACTION_STATUS_INTRANS


@dataclass
class _Pooled:
    connection: Any
    checked_at: float | None = None  # monotonic time of the last whole role check
    used_at: float = 0.0
    reused: bool = False


_pool: dict[str, _Pooled] = {}
_source_urls: dict[int, str] = {}  # data source id -> the URL its connection was opened with
_pool_lock = threading.Lock()


def _open(url: str, timeout: float) -> Any:
    connection = _connect_postgres(url, timeout)
    connection.autocommit = True  # (no round trip: psycopg2 only stops sending BEGIN)
    return connection


def _checkout(url: str, timeout: float, source_id: int | None) -> _Pooled:
    now = _clock()
    with _pool_lock:
        stale = [key for key, pooled in _pool.items() if now - pooled.used_at > POOL_IDLE_SECONDS]
        if source_id is not None:
            previous = _source_urls.get(source_id)
            if previous is not None and previous != url:
                stale.append(previous)  # the data source was given another URL
            _source_urls[source_id] = url
        closing = [_pool.pop(key) for key in set(stale) if key in _pool]
        pooled = _pool.pop(url, None)
    for old in closing:
        _close(old)
    if pooled is not None:
        if not pooled.connection.closed and pooled.connection.info.transaction_status == _IDLE:
            pooled.reused = True
            return pooled
        _close(pooled)  # (a guard: every way back to the pool checks that it is idle)
    return _Pooled(_open(url, timeout))


def _checkin(url: str, pooled: _Pooled) -> None:
    pooled.used_at, pooled.reused = _clock(), False
    with _pool_lock:
        if url not in _pool:
            _pool[url] = pooled
            return
    _close(pooled)  # another thread returned one for the same URL first


def _close(pooled: _Pooled) -> None:
    # Closing a connection the server has dropped cannot fail in a way worth reporting.
    with contextlib.suppress(psycopg2.Error):
        pooled.connection.close()


def connections_close() -> None:
    """Close this process's pooled data source connections (a worker process shutting down,
    the tests between cases)."""
    with _pool_lock:
        pooled = list(_pool.values())
        _pool.clear()
        _source_urls.clear()
    for each in pooled:
        _close(each)


def _forget_after_fork() -> None:
    # A forked child (a Celery pool process) must not use its parent's sockets, nor close
    # them (that would end the parent's sessions): it opens its own. (psycopg2 does not close
    # a connection of another process when the child drops it.)
    global _pool_lock
    _pool.clear()
    _source_urls.clear()
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class _NotInTransaction(SourceError):
    """The connection was not in the state a step of the run needs (never seen: a guard)."""


def _begin(pooled: _Pooled, cursor: Any, timeout: float) -> None:
    """The run's transaction: read-only, with the run's statement timeout, and the role
    checked (its attributes every run; all of it when due)."""
    connection = pooled.connection
    # On a connection already in a transaction, BEGIN would be a warning, not a new
    # transaction: READ ONLY would not apply.
    if connection.info.transaction_status != _IDLE:
        raise _NotInTransaction("The data source connection was not idle at the start.")
    # A read-only transaction refuses every write, whatever the SQL says; the role check
    # refuses the roles that reach past it (files, programs, dblink).
    setup = "BEGIN READ ONLY; SET LOCAL statement_timeout = %s; "
    params = [int(timeout * 1000)]
    now = _clock()
    if pooled.checked_at is None or now - pooled.checked_at >= settings.KPI_SQL_ROLE_CHECK_SECONDS:
        cursor.execute(setup, params)
        _refuse_privileged_role(cursor, datasource_roles.role_problems)
        pooled.checked_at = now
    else:
        # One round trip: BEGIN, the transaction's settings and the lookup of the role's
        # attributes.
        _refuse_privileged_role(
            cursor,
            lambda cursor: datasource_roles.role_attribute_problems(
                cursor, before=setup, params=params
            ),
        )
    if connection.info.transaction_status != _IN_TRANSACTION:
        raise _NotInTransaction("The data source connection is not in the run's transaction.")


def _run_postgres(url: str, query: str, timeout: float, source_id: int | None = None) -> float:
    return _pooled_read(url, timeout, source_id, lambda connection: _value_of(connection, query))


def _pooled_read(url: str, timeout: float, source_id: int | None, work: Callable[[Any], T]) -> T:
    """`work(connection)` in a run's transaction on a pooled connection: read-only, with the
    statement timeout and the role check; rolled back, and the connection put back."""
    pooled = _checkout(url, timeout, source_id)
    try:
        value = _read(url, pooled, timeout, work)
    except BaseException:  # a refusal, a lost connection, the soft time limit: never reused
        _close(pooled)
        raise
    try:
        with pooled.connection.cursor() as cursor:
            # The one state of a session that a SELECT can leave behind past the rollback: a
            # query must not hold advisory locks on the source while its connection waits in
            # the pool, nor hand them to the next job's run. Nothing is ever committed: the
            # read-only transaction is rolled back, in the same round trip.
            cursor.execute("SELECT pg_advisory_unlock_all(); ROLLBACK")
        ended = pooled.connection.info.transaction_status == _IDLE
    except psycopg2.Error:
        _close(pooled)  # the value came before the connection went
    else:
        if ended:
            _checkin(url, pooled)
        else:
            _close(pooled)
    return value


def _read(url: str, pooled: _Pooled, timeout: float, work: Callable[[Any], T]) -> T:
    connection = pooled.connection
    try:
        try:
            with connection.cursor() as cursor:
                _begin(pooled, cursor, timeout)
        except psycopg2.Error:
            if not (pooled.reused and connection.closed):
                raise
            # The server ended the pooled connection while it was idle (a restart, an idle
            # session timeout): nothing of this run has happened yet, a new one does it.
            _close(pooled)
            pooled.connection, pooled.checked_at, pooled.reused = (
                _open(url, timeout),
                None,
                False,
            )
            connection = pooled.connection
            with connection.cursor() as cursor:
                _begin(pooled, cursor, timeout)
        return work(connection)
    except psycopg2.errors.QueryCanceled:
        raise SourceError(f"The query ran longer than {timeout:g} s and was stopped.") from None
    except psycopg2.errors.ReadOnlySqlTransaction:
        raise SourceError("The query tried to write; data sources are read-only.") from None
    except psycopg2.Error as error:
        raise _database_error(error, connection, "The database refused the query") from None


def _value_of(connection: Any, query: str) -> float:
    max_bytes = settings.KPI_SQL_MAX_BYTES
    # A plain cursor: the statement itself lets at most two rows through (see _wrapped).
    with connection.cursor() as cursor:
        cursor.execute(_wrapped(query, max_bytes))
        columns = len(cursor.description or ()) - 2
        rows = cursor.fetchall()
    if columns != 1:
        return _one_number([], columns)
    for _, size, *_ in rows:
        if size is not None and size > max_bytes:
            raise SourceError(
                f"The query returned a value of {size} bytes, more than the "
                f"{max_bytes} bytes allowed (KPI_SQL_MAX_BYTES)."
            )
    return _one_number([(row[0],) for row in rows], columns)


def _open_sqlite(url: str, timeout: float) -> sqlite3.Connection:
    path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
    if not path:
        raise SourceError("A SQLite data source URL looks like sqlite:////absolute/path.db")
    try:
        # mode=ro opens the file read-only: SQLite itself refuses every write.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.OperationalError as error:
        raise SourceError(f"Cannot open the database file: {error}") from None
    # SQLite runs inside this process: the engine itself must refuse to build a string or
    # blob over the cap (zeroblob(5e8) would otherwise take 500 MB of the worker).
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, settings.KPI_SQL_MAX_BYTES)
    deadline = time.monotonic() + timeout
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    return connection


def _run_sqlite(url: str, query: str, timeout: float) -> float:
    connection = _open_sqlite(url, timeout)
    max_bytes = settings.KPI_SQL_MAX_BYTES
    try:
        cursor = connection.execute(query)
        rows = cursor.fetchmany(2)
        return _one_number(rows, len(cursor.description or ()))
    except sqlite3.DataError as error:
        if "too big" in str(error):
            raise SourceError(
                f"The query made a value larger than the {max_bytes} bytes allowed "
                "(KPI_SQL_MAX_BYTES)."
            ) from None
        raise SourceError(_sqlite_refusal(error)) from None
    except sqlite3.OperationalError as error:
        if "interrupted" in str(error):
            raise SourceError(f"The query ran longer than {timeout:g} s and was stopped.") from None
        if "readonly" in str(error):
            raise SourceError("The query tried to write; data sources are read-only.") from None
        raise SourceError(_sqlite_refusal(error)) from None
    except sqlite3.Error as error:
        raise SourceError(_sqlite_refusal(error)) from None
    finally:
        connection.close()


# SQLite messages that name only the query's own text (tables, columns, functions, syntax).
# Others may quote a value the query computed ("JSON path error near '<a value>'"), so they
# are given by SQLite's error code alone.
_SQLITE_SCHEMA_MESSAGES = (
    "no such table",
    "no such column",
    "no such function",
    "ambiguous column name",
    "wrong number of arguments",
    "misuse of aggregate",
    "incomplete input",
)


def _sqlite_refusal(error: sqlite3.Error) -> str:
    message = str(error)
    if message.startswith(_SQLITE_SCHEMA_MESSAGES) or (
        message.startswith("near ") and message.endswith("syntax error")
    ):
        return f"The database refused the query: {message}"
    code = getattr(error, "sqlite_errorname", "") or type(error).__name__
    return (
        f"The database refused the query ({code}). Run it in a SQLite client on the same file "
        "to see why; the message is not shown, as it may quote a value."
    )


# The schema browser of the job form: tables and columns as the data source's role sees them,
# read through the same sandbox as a run (pooled connection, read-only transaction, statement
# timeout, role check). information_schema lists only the columns the role holds a privilege
# on, so a table the role cannot read is not shown; SQLite has no roles (the file is opened
# read-only, as for a run).
SCHEMA_MAX_COLUMNS = 3000


@dataclass(frozen=True)
class Table:
    schema: str  # "" on SQLite
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, type)

    @property
    def label(self) -> str:
        """The name a query uses: PostgreSQL tables outside `public` with their schema."""
        return self.name if self.schema in ("", "public") else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Schema:
    dialect: str  # "postgresql" or "sqlite": CodeMirror's SQL dialect
    tables: tuple[Table, ...]
    truncated: bool = False  # more than SCHEMA_MAX_COLUMNS columns: the first ones shown

    def completion(self) -> dict[str, Any]:
        """CodeMirror's SQL namespace (schema → table → columns, or table → columns)."""
        if self.dialect == "sqlite":
            return {table.name: [name for name, _ in table.columns] for table in self.tables}
        namespace: dict[str, dict[str, list[str]]] = {}
        for table in self.tables:
            namespace.setdefault(table.schema, {})[table.name] = [n for n, _ in table.columns]
        return namespace


def _tables(rows: list[tuple[str, str, str, str]]) -> tuple[Table, ...]:
    grouped: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, kind in rows[:SCHEMA_MAX_COLUMNS]:
        grouped.setdefault((schema, table), []).append((column, kind or ""))
    return tuple(Table(schema, name, tuple(columns)) for (schema, name), columns in grouped.items())


_PG_SCHEMA_SQL = """
SELECT table_schema, table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
  AND table_schema NOT LIKE 'pg\\_%%'
ORDER BY table_schema = 'public' DESC, table_schema, table_name, ordinal_position
LIMIT %s
"""

_SQLITE_SCHEMA_SQL = """
SELECT '', m.name, p.name, p.type
FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p
WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY m.name, p.cid
LIMIT ?
"""


def read_schema(source: DataSource, timeout: float) -> Schema:
    """The tables and columns the data source's role may read, or SourceError."""
    if source.kind != DataSourceKind.DATABASE:
        raise SourceError(f"{source.name} is not a database data source.")
    url = data_source_url(source)
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:

        def columns(connection: Any) -> list[tuple[str, str, str, str]]:
            with connection.cursor() as cursor:
                cursor.execute(_PG_SCHEMA_SQL, [SCHEMA_MAX_COLUMNS + 1])
                return list(cursor.fetchall())

        rows = _pooled_read(url, timeout, source.pk, columns)
        return Schema("postgresql", _tables(rows), len(rows) > SCHEMA_MAX_COLUMNS)
    if scheme == "sqlite":
        connection = _open_sqlite(url, timeout)
        try:
            rows = connection.execute(_SQLITE_SCHEMA_SQL, [SCHEMA_MAX_COLUMNS + 1]).fetchall()
        except sqlite3.Error as error:
            raise SourceError(_sqlite_refusal(error)) from None
        finally:
            connection.close()
        return Schema("sqlite", _tables(rows), len(rows) > SCHEMA_MAX_COLUMNS)
    raise SourceError(f"Unsupported database scheme {scheme!r} (postgres or sqlite).")


def url_version(source: DataSource) -> str:
    """A digest of the data source's URL as it is now (never the URL): what a cache of its
    schema is keyed by, so that a new URL (or another value of its environment variable)
    is read afresh."""
    try:
        url = data_source_url(source)
    except SourceError:
        url = ""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def check_json_path(expression: str) -> Any:
    try:
        return jsonpath_parse(expression)
    # The parser's error for bad grammar, the lexer's for an unknown character.
    except (JsonPathParserError, JsonPathLexerError) as error:
        raise SourceError(f"{expression!r} is not a JSON path: {error}") from None


def run_http(source: DataSource, path: str, json_path: str, timeout: float) -> float:
    expression = check_json_path(json_path)
    base = data_source_url(source)
    url = urljoin(base if base.endswith("/") else base + "/", path.lstrip("/"))
    try:
        document = http.get_json(
            url, allow_private=source.allow_private_addresses, timeout=timeout, same_host_as=base
        )
    except http.TransientOutboundError as error:
        raise TransientSourceError(str(error)) from None
    except http.OutboundError as error:
        raise SourceError(str(error)) from None
    matches = [match.value for match in expression.find(document)]
    if not matches:
        raise SourceError(f"The JSON path {json_path} found nothing.")
    if len(matches) > 1:
        raise SourceError(f"The JSON path {json_path} found {len(matches)} values, not one.")
    return as_number(matches[0], f"The JSON path {json_path}")


@dataclass(frozen=True)
class Calculation:
    name: str
    label: str
    func: Callable[[Job], float]
    unit: str = ""  # the unit of the number it returns, when it has one


CALCULATIONS: dict[str, Calculation] = {}


def calculation(
    name: str, label: str, *, unit: str = ""
) -> Callable[[Callable[[Job], float]], Callable[[Job], float]]:
    """Register a named calculation; jobs pick it by name (nobody types code into a page).
    `unit` declares the unit of its number, compared with the KPI's (`unit_mismatch`)."""

    def decorator(func: Callable[[Job], float]) -> Callable[[Job], float]:
        if name in CALCULATIONS:
            raise ValueError(f"Calculation {name!r} is registered twice.")
        CALCULATIONS[name] = Calculation(name, label, func, unit)
        return func

    return decorator


# Spellings of one unit: "percent" and "%" are the same unit, "hours" and "h" too.
UNIT_ALIASES = {
    "percent": "%",
    "per cent": "%",
    "pct": "%",
    "hour": "h",
    "hours": "h",
    "hrs": "h",
    "second": "s",
    "seconds": "s",
    "sec": "s",
    "minute": "min",
    "minutes": "min",
    "day": "d",
    "days": "d",
}


def _unit_key(unit: str) -> str:
    spelled = " ".join(unit.split()).casefold()
    return UNIT_ALIASES.get(spelled, spelled)


def unit_mismatch(job: Job, kpi_unit: str) -> str:
    """Why the job's number is in another unit than the KPI's, or "". Only a named
    calculation declares the unit of what it returns (a SQL query or a JSON value says
    nothing of its unit); one that declares none is not judged."""
    if job.source_kind != SourceKind.PYTHON:
        return ""
    calc = CALCULATIONS.get(job.calculation)
    if calc is None or not calc.unit or _unit_key(calc.unit) == _unit_key(kpi_unit):
        return ""
    measured = f"in {kpi_unit}" if kpi_unit.strip() else "without a unit"
    return (
        f"Unit mismatch: the calculation {calc.name} returns {calc.unit}, but the KPI is "
        f"measured {measured}."
    )


def run_python(job: Job) -> float:
    calc = CALCULATIONS.get(job.calculation)
    if calc is None:
        raise SourceError(f"There is no calculation named {job.calculation!r}.")
    return as_number(calc.func(job), f"The calculation {job.calculation}")


def evaluate(job: Job) -> float:
    """The job's number now."""
    if job.source_kind == SourceKind.PYTHON:
        return run_python(job)
    if job.data_source is None:
        raise SourceError("The job has no data source.")
    if job.source_kind == SourceKind.SQL:
        return run_sql(job.data_source, job.sql, job.timeout_seconds)
    return run_http(job.data_source, job.http_path, job.json_path, job.timeout_seconds)
