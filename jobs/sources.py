"""Where a job's number comes from: a read-only SQL query, an HTTP GET with a JSON path, or a
named Python calculation. Each returns one float or raises SourceError (permanent: the run
fails) or TransientSourceError (the run is retried)."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import psycopg2
import sqlparse
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

from bizdevops import crypto, http
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


def as_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise SourceError(f"{where} gave {value!r}, not a number.")
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise SourceError(f"{where} gave {value!r}, not a number.") from None
    else:
        raise SourceError(f"{where} gave a {type(value).__name__}, not a number.")
    if not math.isfinite(number):
        raise SourceError(f"{where} gave {number}, not a finite number.")
    return number


# SQL -------------------------------------------------------------------------------------


def check_select(sql: str) -> str:
    """One SELECT (or WITH ... SELECT) statement, else SourceError.

    No semicolon is allowed but one at the end, not even inside a string literal: parsers
    disagree about quoting (sqlparse reads `\\'` as an escaped quote, PostgreSQL does not), and
    a second statement could `COMMIT` the read-only transaction and write. Without a
    semicolon the server cannot see a second statement at all.
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
    return query


def _one_number(rows: list[tuple[Any, ...]]) -> float:
    if not rows:
        raise SourceError("The query returned no row; it must return exactly one number.")
    if len(rows) > 1:
        raise SourceError("The query returned more than one row; it must return exactly one.")
    if len(rows[0]) != 1:
        raise SourceError(f"The query returned {len(rows[0])} columns; it must return exactly one.")
    return as_number(rows[0][0], "The query")


def run_sql(source: DataSource, sql: str, timeout: float) -> float:
    query = check_select(sql)
    url = data_source_url(source)
    scheme = urlsplit(url).scheme
    if scheme in {"postgres", "postgresql", "pgsql"}:
        return _run_postgres(url, query, timeout)
    if scheme == "sqlite":
        return _run_sqlite(url, query, timeout)
    raise SourceError(f"Unsupported database scheme {scheme!r} (postgres or sqlite).")


def _run_postgres(url: str, query: str, timeout: float) -> float:
    try:
        connection = psycopg2.connect(url, connect_timeout=max(1, int(timeout)))
    except psycopg2.OperationalError as error:
        raise TransientSourceError(f"Cannot connect to the database: {error}".strip()) from None
    try:
        with connection, connection.cursor() as cursor:
            # A read-only transaction refuses every write, whatever the SQL says; production
            # data sources should also log in with a SELECT-only role.
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SET LOCAL statement_timeout = %s", [int(timeout * 1000)])
            cursor.execute(query)
            return _one_number(cursor.fetchmany(2))
    except psycopg2.errors.QueryCanceled:
        raise SourceError(f"The query ran longer than {timeout:g} s and was stopped.") from None
    except psycopg2.errors.ReadOnlySqlTransaction:
        raise SourceError("The query tried to write; data sources are read-only.") from None
    except psycopg2.OperationalError as error:
        raise TransientSourceError(f"The database connection failed: {error}".strip()) from None
    except psycopg2.Error as error:
        raise SourceError(f"The database refused the query: {error}".strip()) from None
    finally:
        connection.close()


def _run_sqlite(url: str, query: str, timeout: float) -> float:
    path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
    if not path:
        raise SourceError("A SQLite data source URL looks like sqlite:////absolute/path.db")
    try:
        # mode=ro opens the file read-only: SQLite itself refuses every write.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.OperationalError as error:
        raise SourceError(f"Cannot open the database file: {error}") from None
    deadline = time.monotonic() + timeout
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = connection.execute(query).fetchmany(2)
        return _one_number(rows)
    except sqlite3.OperationalError as error:
        if "interrupted" in str(error):
            raise SourceError(f"The query ran longer than {timeout:g} s and was stopped.") from None
        if "readonly" in str(error):
            raise SourceError("The query tried to write; data sources are read-only.") from None
        raise SourceError(f"The database refused the query: {error}") from None
    except sqlite3.Error as error:
        raise SourceError(f"The database refused the query: {error}") from None
    finally:
        connection.close()


# HTTP ------------------------------------------------------------------------------------


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


# Python ----------------------------------------------------------------------------------


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
