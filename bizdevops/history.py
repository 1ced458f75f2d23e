"""History the application cannot rewrite.

History rows (decisions, handovers, alerts) subclass `AppendOnlyModel`. Three layers keep them
as written:

- the model refuses `save()` of an existing row and `delete()`;
- the database refuses UPDATE and DELETE by trigger, on PostgreSQL and SQLite alike, and on
  PostgreSQL refuses TRUNCATE to every role but the table's owner (migrations in
  `bizdevops.db`);
- on PostgreSQL the web, worker and beat connect as a runtime role that owns nothing and may
  only INSERT and SELECT history rows, so it can neither disable those triggers (only an owner
  may) nor switch them off for its session (`session_replication_role` is for superusers).
  `runtime_role_grant` gives it exactly that, after every `migrate` (the post_migrate handler)
  and on demand (`manage.py grant_runtime_role`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

HISTORY_PRIVILEGES = "SELECT, INSERT"
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"


class AppendOnlyModel(models.Model):
    """Audit rows: written once by a service, never changed or deleted afterwards.

    The database refuses UPDATE and DELETE as well (triggers), so not even a queryset update
    or raw SQL can rewrite history; the runtime database role may only INSERT and SELECT.
    Foreign keys from a history row must be PROTECT: a cascade would be a refused write.
    """

    append_only: ClassVar[bool] = True

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError(f"{type(self).__name__} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError(f"{type(self).__name__} rows are append-only.")


def is_history(model: type[models.Model]) -> bool:
    return bool(getattr(model, "append_only", False))


def history_models() -> list[type[models.Model]]:
    return [model for model in apps.get_models() if is_history(model)]


def _tables(models_: Iterable[type[models.Model]]) -> list[tuple[str, bool]]:
    return [
        (model._meta.db_table, is_history(model))
        for model in models_
        if model._meta.managed and not model._meta.proxy
    ]


def _check_role(cursor: Any, role: str, tables: list[str]) -> None:
    """Refuse a role for which the grants would mean nothing: one that does not exist, a
    superuser, one that owns (or has the rights of the owner of) an app table, or one that
    may set `session_replication_role` (which switches triggers off)."""
    cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    if row is None:
        raise ImproperlyConfigured(
            f"The runtime database role {role!r} does not exist: create it first "
            "(deploy/postgres/10-roles.sh shows how)."
        )
    # A member may SET ROLE to the roles it belongs to (NOINHERIT or not): those count too.
    cursor.execute(
        "SELECT bool_or(rolsuper OR rolbypassrls) FROM pg_roles"
        " WHERE pg_has_role(%s, oid, 'MEMBER')",
        [role],
    )
    if cursor.fetchone()[0]:
        raise ImproperlyConfigured(
            f"The runtime database role {role!r} is (or is a member of) a superuser or a role "
            "that bypasses row security: it must be a plain login role."
        )
    cursor.execute(
        "SELECT relname FROM pg_class WHERE relname = ANY(%s)"
        " AND pg_table_is_visible(oid) AND pg_has_role(%s, relowner, 'MEMBER') ORDER BY 1",
        [tables, role],
    )
    owned = [name for (name,) in cursor.fetchall()]
    if owned:
        raise ImproperlyConfigured(
            f"The runtime database role {role!r} owns (or is a member of the owner of) "
            f"{', '.join(owned[:3])}{' …' if len(owned) > 3 else ''}: it must own nothing. "
            "Run migrations as another role (the owner) and connect the app as this one."
        )
    cursor.execute("SHOW server_version_num")
    if int(cursor.fetchone()[0]) >= 150000:
        cursor.execute(
            "SELECT has_parameter_privilege(%s, 'session_replication_role', 'SET')", [role]
        )
        if cursor.fetchone()[0]:
            raise ImproperlyConfigured(
                f"The runtime database role {role!r} may SET session_replication_role, "
                "which switches the history triggers off: REVOKE SET ON PARAMETER "
                "session_replication_role from it."
            )


def _partitions(cursor: Any, parents: dict[str, bool]) -> list[tuple[str, bool]]:
    """The partitions of the partitioned tables among `parents`, each history or not as its
    parent is. A role may use what it holds on a partition directly, around the parent's
    privileges: a partition gets exactly what its parent gets, whatever it had before."""
    cursor.execute(
        "SELECT child.relname, parent.relname FROM pg_inherits"
        " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
        " JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
        " WHERE parent.relkind = 'p' AND parent.relname = ANY(%s)"
        " AND pg_table_is_visible(parent.oid) ORDER BY 1",
        [list(parents)],
    )
    return [(child, parents[parent]) for child, parent in cursor.fetchall()]


def runtime_role_grant(
    *,
    connection: BaseDatabaseWrapper,
    role: str,
    models_: Iterable[type[models.Model]] | None = None,
) -> int:
    """On PostgreSQL, give `role` exactly what the app needs on the tables of `models_` (all
    installed models by default) that exist, and on their partitions (kpis.partitions):
    SELECT and INSERT on history tables; SELECT, INSERT, UPDATE and DELETE on the others;
    USAGE and SELECT on their sequences. Whatever it had before on those tables is revoked
    first, so TRUNCATE, REFERENCES and TRIGGER are never granted. Returns the number of tables
    granted; does nothing elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    wanted = _tables(models_ if models_ is not None else apps.get_models(include_auto_created=True))
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        tables = [(table, history) for table, history in wanted if table in existing]
        if not tables:
            return 0
        tables += _partitions(cursor, dict(tables))
        _check_role(cursor, role, [table for table, _ in tables])
        grantee = quote(role)
        for table, history in tables:
            privileges = HISTORY_PRIVILEGES if history else TABLE_PRIVILEGES
            cursor.execute(f"REVOKE ALL ON TABLE {quote(table)} FROM {grantee}")
            cursor.execute(f"GRANT {privileges} ON TABLE {quote(table)} TO {grantee}")
            for sequence in connection.introspection.get_sequences(cursor, table):
                name = quote(sequence["name"])
                cursor.execute(f"REVOKE ALL ON SEQUENCE {name} FROM {grantee}")
                cursor.execute(f"GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCE {name} TO {grantee}")
    return len(tables)


def grant_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate, once per app: grant DATABASE_RUNTIME_ROLE on that app's tables."""
    role = settings.DATABASE_RUNTIME_ROLE
    if role:
        runtime_role_grant(
            connection=connections[using],
            role=role,
            models_=sender.get_models(include_auto_created=True),
        )
