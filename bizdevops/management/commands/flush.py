from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

from bizdevops.history import history_models


class Command(flush.Command):
    """Django's flush (also what transactional tests run after each test), which empties every
    table, history included. On PostgreSQL it truncates as the owner, which the TRUNCATE
    trigger allows. On SQLite it deletes, which the history triggers refuse: they are lifted
    for flush's own transaction and put back, exactly as they were, before it commits."""

    def handle(self, **options: Any) -> None:
        database = options["database"]
        connection = connections[database]
        if connection.vendor != "sqlite":
            return super().handle(**options)
        tables = [model._meta.db_table for model in history_models()]
        with transaction.atomic(using=database), connection.cursor() as cursor:
            cursor.execute("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger'")
            triggers = [(name, sql) for table, name, sql in cursor.fetchall() if table in tables]
            for name, _ in triggers:
                cursor.execute(f"DROP TRIGGER {connection.ops.quote_name(name)}")
            super().handle(**options)
            for _, sql in triggers:
                cursor.execute(sql)
        return None
