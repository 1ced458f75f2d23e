"""Steps of the upgrade test (tests/migrations/test_upgrade.py), each run in its own process
against the database that DATABASE_URL names:

    python tests/migrations/upgrade.py old-schema   # migrate to the schema of commit 4508a72
    python tests/migrations/upgrade.py load FILE    # put the rows of old_schema_seed.json in
    python tests/migrations/upgrade.py dump         # print every row of every table as JSON
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bizdevops.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.migrations.executor import MigrationExecutor  # noqa: E402

# The last migration of every app at commit 4508a72 (before the `jobs` app).
OLD_SCHEMA = [
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0012_alter_user_first_name_max_length"),
    ("admin", "0003_logentry_add_action_flag_choices"),
    ("sessions", "0001_initial"),
    ("authtoken", "0004_alter_tokenproxy_options"),
    ("initiatives", "0002_roles_and_audit"),
    ("phases", "0002_gates_and_audit"),
    ("kpis", "0005_kpi_last_health"),
    ("notifications", "0001_initial"),
]


def old_schema() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(OLD_SCHEMA)


def _column_types() -> dict[str, dict[str, str]]:
    types: dict[str, dict[str, str]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            description = connection.introspection.get_table_description(cursor, table)
            types[table] = {
                column.name: connection.introspection.get_field_type(column.type_code, column)
                for column in description
            }
    return types


def _value(value: Any, field_type: str) -> Any:
    if value is not None and field_type == "BooleanField":
        return bool(value)  # SQLite wrote 0 / 1
    return value


def load(path: str) -> None:
    """Replace the rows of every table in the file with the file's rows, in one transaction
    (foreign keys are checked at its end), then move the id sequences past them."""
    tables = json.loads(Path(path).read_text())["tables"]
    types = _column_types()
    with transaction.atomic(), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'DELETE FROM "{table}"')  # noqa: S608  (names from our fixture)
        for table, content in tables.items():
            columns = content["columns"]
            if not content["rows"]:
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join(["%s"] * len(columns))
            rows = [
                [_value(v, types[table].get(c, "")) for c, v in zip(columns, row, strict=True)]
                for row in content["rows"]
            ]
            cursor.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({marks})',  # noqa: S608
                rows,
            )
    if connection.vendor != "postgresql":
        return  # SQLite's autoincrement follows the largest id by itself
    with connection.cursor() as cursor:
        for table, content in tables.items():
            if "id" in content["columns"]:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608
                    f'coalesce(max(id), 1), max(id) IS NOT null) FROM "{table}"'
                )


def dump() -> None:
    result: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608  (introspected names)
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            result[table] = rows
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "old-schema":
        old_schema()
    elif command == "load":
        load(sys.argv[2])
    elif command == "dump":
        dump()
    elif command == "migrate":
        call_command("migrate", verbosity=0)
    else:
        raise SystemExit(f"unknown command {command}")
