"""Database helpers for migrations: the triggers that keep history tables append-only."""

from __future__ import annotations

from typing import Any

from django.db.migrations.operations.special import RunPython


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
