"""What a PostgreSQL data source may log in as, and the SQL that creates such a role.

`READ ONLY` stops plain writes, not a superuser: through `dblink`, `pg_read_file`,
`lo_import` or `COPY ... FROM PROGRAM` a privileged role reaches the server's files, programs
and other databases. So a data source is checked before it is saved and before every run:
its role must be a plain login role that can read, and nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

# Predefined roles whose members reach beyond reading the granted tables.
DANGEROUS_MEMBERSHIPS: dict[str, str] = {
    "pg_execute_server_program": "runs programs on the database server",
    "pg_read_server_files": "reads files on the database server",
    "pg_write_server_files": "writes files on the database server",
    "pg_write_all_data": "may write every table",
    # Reads every table of every schema, the application's own included if it shares the
    # database: grant SELECT per schema instead.
    "pg_read_all_data": "reads every table, not only the granted schemas",
    # Sees the query text of every session (pg_stat_activity), literals and all; pg_monitor
    # includes it.
    "pg_read_all_stats": "sees every session's queries",
}

# Functions that reach the server's files or open connections from the server. All but dblink
# are revoked from PUBLIC by default; a role may still have been granted them.
SERVER_FUNCTIONS = (
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
)

ROLE_SQL = """
SELECT current_user, session_user, rolsuper, rolcreaterole, rolreplication, rolbypassrls
FROM pg_roles WHERE rolname = current_user
"""
# Every role this one belongs to, directly or not. A member may SET ROLE to it (and with
# NOINHERIT its grants do not even show in has_table_privilege), so a data source role may be
# a member of none: the check would otherwise be about a role the query need not run as.
MEMBER_OF_SQL = """
SELECT r.rolname FROM pg_roles r
WHERE r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER')
ORDER BY 1
"""
MEMBERSHIP_SQL = """
SELECT r FROM unnest(%s::text[]) AS r
WHERE to_regrole(r) IS NOT NULL AND pg_has_role(current_user, r, 'MEMBER')
ORDER BY r
"""
# Every table, view and foreign table outside the catalogs that this role may change in any
# way, column grants included (owning a table gives all of them).
WRITABLE_SQL = r"""
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND (has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
       OR has_any_column_privilege(c.oid, 'INSERT, UPDATE'))
ORDER BY 1
"""
FUNCTIONS_SQL = """
SELECT DISTINCT p.proname FROM pg_proc p
WHERE p.proname = ANY(%s) AND has_function_privilege(p.oid, 'EXECUTE')
ORDER BY 1
"""


def role_problems(cursor: Any) -> tuple[str, list[str]]:
    """(the role's name, what it may do that a data source must not), on an open cursor."""
    name, problems, superuser = _attribute_problems(cursor)
    cursor.execute(MEMBERSHIP_SQL, [list(DANGEROUS_MEMBERSHIPS)])
    dangerous = [row[0] for row in cursor.fetchall()]
    for member_of in dangerous:
        problems.append(f"is a member of {member_of} ({DANGEROUS_MEMBERSHIPS[member_of]})")
    cursor.execute(MEMBER_OF_SQL)
    others = [row[0] for row in cursor.fetchall() if row[0] not in dangerous]
    if others:
        problems.append(
            f"is a member of {', '.join(others)} (it may SET ROLE to them; a data source role "
            "must be a member of no role)"
        )
    if not superuser:  # a superuser may do everything below; saying so adds nothing
        cursor.execute(WRITABLE_SQL)
        writable = [row[0] for row in cursor.fetchall()]
        if writable:
            shown = ", ".join(writable[:3]) + (" …" if len(writable) > 3 else "")
            problems.append(f"may write to {len(writable)} table(s) ({shown})")
        cursor.execute(FUNCTIONS_SQL, [list(SERVER_FUNCTIONS)])
        functions = [row[0] for row in cursor.fetchall()]
        if functions:
            problems.append(
                f"may execute {', '.join(functions)} (server files or connections; revoke "
                "EXECUTE, from PUBLIC for dblink, or drop the extension)"
            )
    return name, problems


def role_attribute_problems(
    cursor: Any, *, before: str = "", params: list[Any] | None = None
) -> tuple[str, list[str]]:
    """The first part of `role_problems`, in one catalog lookup: the session runs as the
    role it logged in as, which is no superuser and has no CREATEROLE, REPLICATION or
    BYPASSRLS (a pooled data source connection checks this on every run, the rest of
    `role_problems` when it opens and then every KPI_SQL_ROLE_CHECK_SECONDS). `before`:
    statements (with `params`) sent in the same round trip, ahead of the lookup."""
    name, problems, _ = _attribute_problems(cursor, before, params)
    return name, problems


def _attribute_problems(
    cursor: Any, before: str = "", params: list[Any] | None = None
) -> tuple[str, list[str], bool]:
    cursor.execute(before + ROLE_SQL, params)
    name, session_name, superuser, createrole, replication, bypassrls = cursor.fetchone()
    problems: list[str] = []
    if session_name != name:
        # `options=-c role=...` in the URL: the login role (checked nowhere) could switch back.
        problems.append(f"logs in as {session_name} but runs as {name}; set no role in the URL")
    if superuser:
        problems.append("is a superuser")
    if createrole:
        problems.append("may create roles (CREATEROLE)")
    if replication:
        problems.append("may stream replication (REPLICATION)")
    if bypassrls:
        problems.append("bypasses row-level security (BYPASSRLS)")
    return name, problems, bool(superuser)


def quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError("An identifier is not empty and has no NUL character.")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    # An E'' string means the same whatever standard_conforming_strings says.
    if "\x00" in value:
        raise ValueError("A literal has no NUL character.")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677): the SQL, the server log
    and `pg_stat_activity` then never see the password itself."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


@dataclass(frozen=True)
class ReaderRole:
    name: str
    database: str
    schemas: tuple[str, ...] = ("public",)
    statement_timeout: str = "60s"
    idle_in_transaction_session_timeout: str = "60s"
    connection_limit: int = 10
    # ALTER DEFAULT PRIVILEGES for tables these roles create later (empty: none).
    future_tables_of: tuple[str, ...] = field(default=())


def reader_role_sql(role: ReaderRole, *, password_sql: str, exists: bool = False) -> list[str]:
    """The statements that create (or, if `exists`, reset) a login role that can only read the
    tables of `role.schemas` in `role.database`. `password_sql` is the PASSWORD operand: a
    quoted SCRAM verifier, or a psql variable in the docker-compose init script.

    No REVOKE of CREATE or TEMP: a new role has no CREATE on any schema (PostgreSQL 15), and
    a READ ONLY transaction, in which every run happens, cannot create anything, temporary
    tables included. PUBLIC's grants are the database owner's business, not this role's.
    """
    if role.connection_limit < 1:
        raise ValueError("The connection limit is at least 1.")
    name = quote_ident(role.name)
    database = quote_ident(role.database)
    statements = [
        f"{'ALTER' if exists else 'CREATE'} ROLE {name} LOGIN NOSUPERUSER NOCREATEDB "
        f"NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT "
        f"CONNECTION LIMIT {int(role.connection_limit)} PASSWORD {password_sql}",
        f"ALTER ROLE {name} SET statement_timeout = {quote_literal(role.statement_timeout)}",
        f"ALTER ROLE {name} SET idle_in_transaction_session_timeout = "
        f"{quote_literal(role.idle_in_transaction_session_timeout)}",
        f"ALTER ROLE {name} SET default_transaction_read_only = on",
        f"GRANT CONNECT ON DATABASE {database} TO {name}",
    ]
    for schema in role.schemas:
        schema_sql = quote_ident(schema)
        statements += [
            f"GRANT USAGE ON SCHEMA {schema_sql} TO {name}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema_sql} TO {name}",
        ]
        statements += [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_ident(owner)} IN SCHEMA {schema_sql} "
            f"GRANT SELECT ON TABLES TO {name}"
            for owner in role.future_tables_of
        ]
    return statements
