from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from bizdevops.history import runtime_role_grant


class Command(BaseCommand):
    help = (
        "PostgreSQL: grant the runtime role (default DATABASE_RUNTIME_ROLE) exactly what the "
        "app needs: INSERT and SELECT on history tables, SELECT/INSERT/UPDATE/DELETE on the "
        "others. `migrate` does this itself; run it as the owner of the tables."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", nargs="?", default="", help="Default: DATABASE_RUNTIME_ROLE.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"] or settings.DATABASE_RUNTIME_ROLE
        if not role:
            raise CommandError("Name the role, or set DATABASE_RUNTIME_ROLE.")
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("Database roles exist on PostgreSQL only.")
        try:
            count = runtime_role_grant(connection=connection, role=role)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Granted {role} on {count} tables.")
