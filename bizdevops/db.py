"""Database helpers for migrations."""

from __future__ import annotations

from typing import Any

from django.db.migrations.operations.special import RunPython


def append_only_trigger(table: str) -> RunPython:
    """On PostgreSQL, a trigger that refuses UPDATE and DELETE on an audit table, so history
    cannot be rewritten through any interface, not even raw SQL. (TRUNCATE, used by test
    flushes and full resets, is left alone.) Other databases rely on the model guard."""
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
