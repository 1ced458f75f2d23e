"""Print, or apply, the SQL of a PostgreSQL login role that a data source may use."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg2
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import datasource_roles
from jobs.datasource_roles import ReaderRole


class Command(BaseCommand):
    help = (
        "The SQL that creates a least-privilege PostgreSQL role for a data source: LOGIN, "
        "SELECT on the chosen schemas only, statement and idle timeouts, a connection limit, "
        "no superuser, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS. Printed, or run with "
        "--apply (as an admin role, from --admin-url or the libpq PG* environment variables)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="The role's name.")
        parser.add_argument("--database", required=True, help="The database it reads.")
        parser.add_argument(
            "--schema",
            action="append",
            dest="schemas",
            help="A schema whose tables it may read (repeatable; default: public).",
        )
        parser.add_argument(
            "--password", help="Its password (default: a new one, printed once on stderr)."
        )
        parser.add_argument("--statement-timeout", default="60s")
        parser.add_argument("--idle-in-transaction-timeout", default="60s")
        parser.add_argument("--connection-limit", type=int, default=10)
        parser.add_argument(
            "--future-tables-of",
            action="append",
            default=[],
            metavar="ROLE",
            help="Tables this role creates later are readable too (ALTER DEFAULT PRIVILEGES; "
            "repeatable).",
        )
        parser.add_argument(
            "--apply", action="store_true", help="Run the SQL instead of printing it."
        )
        parser.add_argument(
            "--admin-url",
            default="",
            help="With --apply: a postgres:// URL of a role that may create roles and grant "
            "on the schemas (default: the libpq PG* environment variables). Its database "
            "is replaced by --database.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role = ReaderRole(
            name=options["name"],
            database=options["database"],
            schemas=tuple(options["schemas"] or ["public"]),
            statement_timeout=options["statement_timeout"],
            idle_in_transaction_session_timeout=options["idle_in_transaction_timeout"],
            connection_limit=options["connection_limit"],
            future_tables_of=tuple(options["future_tables_of"]),
        )
        password = options["password"] or secrets.token_urlsafe(24)
        password_sql = datasource_roles.quote_literal(datasource_roles.scram_verifier(password))
        if not options["password"]:
            self.stderr.write(f"Password of role {role.name} (shown once): {password}")
        try:
            if not options["apply"]:
                for statement in datasource_roles.reader_role_sql(role, password_sql=password_sql):
                    self.stdout.write(statement + ";")
                return
            self._apply(role, password_sql, options["admin_url"])
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _apply(self, role: ReaderRole, password_sql: str, admin_url: str) -> None:
        try:
            connection = psycopg2.connect(admin_url, dbname=role.database)
        except psycopg2.OperationalError as error:
            raise CommandError(f"Cannot connect as the admin: {error}".strip()) from None
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name])
                exists = cursor.fetchone() is not None
                for statement in datasource_roles.reader_role_sql(
                    role, password_sql=password_sql, exists=exists
                ):
                    cursor.execute(statement)
        except psycopg2.Error as error:
            raise CommandError(f"The SQL failed, nothing was changed: {error}".strip()) from None
        finally:
            connection.close()
        self.stdout.write(
            f"Role {role.name} {'reset' if exists else 'created'} in {role.database}."
        )
