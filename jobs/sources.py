"""Where a job's number comes from: a read-only SQL query, an HTTP GET with a JSON path, or a
named Python calculation. Each returns one float or raises SourceError (permanent: the run
fails) or TransientSourceError (the run is retried)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import psycopg2
import psycopg2.errorcodes
import sqlparse
from django.conf import settings
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

from bizdevops import crypto, http
from bizdevops.db import CONNECTION_LOST_SQLSTATES
from jobs import datasource_roles
from jobs.models import SourceKind

if TYPE_CHECKING:
    from jobs.models import DataSource, Job


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
    statements = [s for s in sqlparse.parse(query) if s.value.strip()]
    if len(statements) != 1 or statements[0].get_type() != "SELECT":
        raise SourceError("Only a SELECT query is allowed.")
    _refuse_writes_inside(statements[0])
    return query


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
    # The server measures each value and sends NULL in place of one that is too big, so no
    # oversized value ever crosses the wire. The user's query sits after our select list
    # (whatever it does to the FROM clause, the cap stays) and on lines of its own (a
    # trailing `--` comment cannot swallow the closing parenthesis). OFFSET 0 keeps the
    # value computed once per row.
    # Running the user's query is the point: check_select has vetted it.
    cap = int(max_bytes)
    return (
        f"SELECT CASE WHEN octet_length(v::text) > {cap} THEN NULL ELSE v END, "  # noqa: S608
        f"octet_length(v::text) FROM (SELECT * FROM (\n{query}\n) AS q0(v) OFFSET 0) AS q "
        "LIMIT 2"
    )


# Pooled connections, one per data source URL in each worker process. Each run is still a
# transaction of its own (READ ONLY, the statement timeout, the role check) that is rolled
# back; a connection is closed, never reused, after any error, when its data source's URL
# changes, after POOL_IDLE_SECONDS unused and when the worker process ends. A run takes the
# connection out of the pool while it uses it, so two threads never share one.
POOL_IDLE_SECONDS = 300.0
_clock = time.monotonic  # (the tests move it forward)


@dataclass
class _Pooled:
    connection: Any
    checked_at: float | None = None  # monotonic time of the last whole role check
    used_at: float = 0.0
    reused: bool = False


_pool: dict[str, _Pooled] = {}
_source_urls: dict[int, str] = {}  # data source id -> the URL its connection was opened with
_pool_lock = threading.Lock()


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
    if pooled is not None and not pooled.connection.closed:
        pooled.reused = True
        return pooled
    return _Pooled(_connect_postgres(url, timeout))


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


def _begin(pooled: _Pooled, cursor: Any, timeout: float) -> None:
    """The run's transaction: read-only, with the run's statement timeout, and the role
    checked (its attributes every run; all of it when due)."""
    # A read-only transaction refuses every write, whatever the SQL says; the role check
    # refuses the roles that reach past it (files, programs, dblink).
    setup = "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = %s; "
    params = [int(timeout * 1000)]
    now = _clock()
    if pooled.checked_at is None or now - pooled.checked_at >= settings.KPI_SQL_ROLE_CHECK_SECONDS:
        cursor.execute(setup, params)
        _refuse_privileged_role(cursor, datasource_roles.role_problems)
        pooled.checked_at = now
        return
    # One round trip: the transaction's settings and the lookup of the role's attributes.
    _refuse_privileged_role(
        cursor,
        lambda cursor: datasource_roles.role_attribute_problems(
            cursor, before=setup, params=params
        ),
    )


def _run_postgres(url: str, query: str, timeout: float, source_id: int | None = None) -> float:
    pooled = _checkout(url, timeout, source_id)
    try:
        value = _query_postgres(url, pooled, query, timeout)
    except BaseException:  # a refusal, a lost connection, the soft time limit: never reused
        _close(pooled)
        raise
    try:
        with pooled.connection.cursor() as cursor:
            # The one state of a session that a SELECT can leave behind past the rollback: a
            # query must not hold advisory locks on the source while its connection waits in
            # the pool, nor hand them to the next job's run.
            cursor.execute("SELECT pg_advisory_unlock_all()")
        # Nothing is ever committed: the read-only transaction is rolled back.
        pooled.connection.rollback()
    except psycopg2.Error:
        _close(pooled)  # the value came before the connection went
    else:
        _checkin(url, pooled)
    return value


def _query_postgres(url: str, pooled: _Pooled, query: str, timeout: float) -> float:
    max_bytes = settings.KPI_SQL_MAX_BYTES
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
                _connect_postgres(url, timeout),
                None,
                False,
            )
            connection = pooled.connection
            with connection.cursor() as cursor:
                _begin(pooled, cursor, timeout)
        with connection.cursor() as cursor:
            # The columns without a row: LIMIT 0 plans the query and stops.
            cursor.execute(f"SELECT * FROM (\n{query}\n) AS q LIMIT 0")  # noqa: S608
            columns = len(cursor.description or ())
        if columns != 1:
            return _one_number([], columns)
        # A server-side cursor: at most two rows come over, each value capped above.
        with connection.cursor(name="kpi_value") as named:
            named.execute(_wrapped(query, max_bytes))
            rows = named.fetchmany(2)
        for _, size in rows:
            if size is not None and size > max_bytes:
                raise SourceError(
                    f"The query returned a value of {size} bytes, more than the "
                    f"{max_bytes} bytes allowed (KPI_SQL_MAX_BYTES)."
                )
        return _one_number([(value,) for value, _ in rows], columns)
    except psycopg2.errors.QueryCanceled:
        raise SourceError(f"The query ran longer than {timeout:g} s and was stopped.") from None
    except psycopg2.errors.ReadOnlySqlTransaction:
        raise SourceError("The query tried to write; data sources are read-only.") from None
    except psycopg2.Error as error:
        raise _database_error(error, connection, "The database refused the query") from None


def _run_sqlite(url: str, query: str, timeout: float) -> float:
    path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
    if not path:
        raise SourceError("A SQLite data source URL looks like sqlite:////absolute/path.db")
    try:
        # mode=ro opens the file read-only: SQLite itself refuses every write.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.OperationalError as error:
        raise SourceError(f"Cannot open the database file: {error}") from None
    max_bytes = settings.KPI_SQL_MAX_BYTES
    # SQLite runs inside this process: the engine itself must refuse to build a string or
    # blob over the cap (zeroblob(5e8) would otherwise take 500 MB of the worker).
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_bytes)
    deadline = time.monotonic() + timeout
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
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


CALCULATIONS: dict[str, Calculation] = {}


def calculation(
    name: str, label: str
) -> Callable[[Callable[[Job], float]], Callable[[Job], float]]:
    """Register a named calculation; jobs pick it by name (nobody types code into a page)."""

    def decorator(func: Callable[[Job], float]) -> Callable[[Job], float]:
        if name in CALCULATIONS:
            raise ValueError(f"Calculation {name!r} is registered twice.")
        CALCULATIONS[name] = Calculation(name, label, func)
        return func

    return decorator


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
