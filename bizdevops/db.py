"""Database helpers: the triggers that keep history tables append-only (for migrations), and
doing work again after the connection to the database was lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection
from django.db.migrations.operations.special import RunPython

log = logging.getLogger(__name__)

T = TypeVar("T")
LOST_CONNECTION_RETRIES = 5


# Connection exceptions (class 08), and the server ending or refusing sessions: 57P01 admin
# shutdown (pg_terminate_backend too), 57P02 crash shutdown, 57P03 cannot connect now.
CONNECTION_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def lost_connection(error: Exception) -> bool:
    """The error a query gets when the server closed the connection (a terminated backend, a
    restart, a network cut), as opposed to a refused statement."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    code = str(getattr(cause, "pgcode", "") or "")
    if code:
        return code.startswith(CONNECTION_LOST_SQLSTATES)
    # psycopg2 reports a dropped connection without SQLSTATE; SQLite never drops one.
    return connection.vendor == "postgresql"


def retry_on_lost_connection(
    work: Callable[[], T], *, what: str, attempts: int = LOST_CONNECTION_RETRIES
) -> T:
    """Run `work` (a transaction of its own) and, when the database connection was lost
    under it, close the connection and run it again on a new one, with a short backoff (0.25,
    0.5, 1, 2 s). Must be called outside any transaction: the work must be whole or absent."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (OperationalError, InterfaceError) as error:
            if attempt == attempts or not lost_connection(error) or connection.in_atomic_block:
                raise
            log.warning("Lost the database connection during %s (%s); again", what, error)
            connection.close()
            time.sleep(0.25 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def append_only_trigger(table: str) -> RunPython:
    """On PostgreSQL, a trigger that refuses UPDATE and DELETE on an audit table, so history
    cannot be rewritten through any interface, not even raw SQL. TRUNCATE and SQLite are
    `history_guards`' part."""
    function = f"{table}_append_only"

    def forward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(
            f"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {function}();
            """,
            params=None,
        )

    def backward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"
        )

    return RunPython(forward, backward)


def sqlite_history_triggers(table: str) -> list[str]:
    """SQLite has no roles: BEFORE UPDATE / DELETE triggers refuse rewrites through the ORM
    (queryset update and delete) and raw SQL. A rebuild of the table (how SQLite alters most
    columns) drops them: tests/phases/test_append_only.py checks they are there."""
    return [
        f'CREATE TRIGGER IF NOT EXISTS "{table}_no_{event.lower()}" BEFORE {event} ON "{table}"'
        f" BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END"
        for event in ("UPDATE", "DELETE")
    ]


def sqlite_history_triggers_drop(table: str) -> list[str]:
    return [f'DROP TRIGGER IF EXISTS "{table}_no_{event}"' for event in ("update", "delete")]


def history_guards(table: str) -> RunPython:
    """What `append_only_trigger` does not cover, per database:

    - SQLite: triggers refusing UPDATE and DELETE (`sqlite_history_triggers`);
    - PostgreSQL: a statement trigger refusing TRUNCATE (which skips row triggers) to every
      role that does not have the rights of the table's owner, even one granted TRUNCATE.
      The owner may still empty the table (migrations, `manage.py flush`, the test flushes):
      it could drop the trigger anyway. The app does not connect as the owner
      (bizdevops.history)."""
    function = f"{table}_no_truncate"

    def forward(apps: Any, schema_editor: Any) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "sqlite":
            for statement in sqlite_history_triggers(table):
                schema_editor.execute(statement, params=None)
        elif vendor == "postgresql":
            schema_editor.execute(
                f"""
                CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
                BEGIN
                    IF pg_has_role(
                        current_user,
                        (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                        'USAGE'
                    ) THEN
                        RETURN NULL;
                    END IF;
                    RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
                        USING ERRCODE = 'integrity_constraint_violation';
                END;
                $$ LANGUAGE plpgsql;
                CREATE TRIGGER {function} BEFORE TRUNCATE ON {table}
                    FOR EACH STATEMENT EXECUTE FUNCTION {function}();
                """,  # noqa: S608  (table names of our migrations)
                params=None,
            )

    def backward(apps: Any, schema_editor: Any) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "sqlite":
            for statement in sqlite_history_triggers_drop(table):
                schema_editor.execute(statement, params=None)
        elif vendor == "postgresql":
            schema_editor.execute(
                f"DROP TRIGGER IF EXISTS {function} ON {table};"
                f" DROP FUNCTION IF EXISTS {function}();"
            )

    return RunPython(forward, backward)
