"""The application cannot rewrite its own history on PostgreSQL: migrations run as an owner
role, the web, worker and beat as a runtime role that owns nothing and may only INSERT and
SELECT history rows.

A database of its own is set up as docker-compose sets it up: deploy/postgres/10-roles.sh
creates the two roles (unique names here: roles are cluster-wide), `manage.py migrate` runs as
the owner with DATABASE_RUNTIME_ROLE set (its post_migrate handler grants the runtime role),
and the app's own services write a decision, a handover and an alert over a connection as the
runtime role. Then the runtime role tries what would rewrite that history.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.helpers import missing_service

ROOT = Path(__file__).resolve().parents[2]
ROLES_SCRIPT = ROOT / "deploy" / "postgres" / "10-roles.sh"
HISTORY_TABLES = ["initiatives_handover", "notifications_alert", "phases_gatedecision"]
ATTACKS = {
    "update": "UPDATE {table} SET id = id",
    "delete": "DELETE FROM {table}",
    "truncate": "TRUNCATE {table} CASCADE",
    "disable trigger": "ALTER TABLE {table} DISABLE TRIGGER USER",
}
# What the runtime role's connection does through the app: the services of three apps, each
# writing a history row, and ordinary updates of other tables.
APP_WORK = """
from django.contrib.auth.models import Group, User
from bizdevops.roles import Role
from initiatives.models import BusinessUnit
from initiatives.services import initiative_create, initiative_hand_over, initiative_update
from notifications.models import Event
from notifications.services import alert_record
from phases.services import gate_decide

pm = User.objects.create_user("pm", password="pw")
other = User.objects.create_user("pm2", password="pw")
for user in (pm, other):
    user.groups.add(Group.objects.get(name=Role.PROGRAM_MANAGER))
unit = BusinessUnit.objects.create(name="Fraud")
initiative = initiative_create(user=pm, business_unit=unit, title="Card fraud")
initiative_update(initiative=initiative, user=pm, title="Card-fraud detection")
gate_decide(initiative=initiative, decision="hold", rationale="Wait", user=pm)
initiative_hand_over(initiative=initiative, to=other, reason="Leave", user=pm)
alert_record(
    kind="kpi_status", message="Red", recipients=[pm.pk], event=Event.KPI_STATUS_CHANGED,
    payload={},
)
print("app work done")
"""

pytestmark = pytest.mark.postgres


@dataclass
class Deployment:
    database: str
    owner: str
    runtime: str
    base_url: str

    def url(self, role: str) -> str:
        parts = urlsplit(self.base_url)
        netloc = f"{role}:pw-{role}@{parts.hostname}:{parts.port or 5432}"
        return urlunsplit((parts.scheme, netloc, f"/{self.database}", "", ""))

    def connect(self, role: str) -> Any:
        import psycopg2

        parts = urlsplit(self.base_url)
        return psycopg2.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            dbname=self.database,
            user=role,
            password=f"pw-{role}",
        )


def _admin(base_url: str) -> Any:
    import psycopg2

    connection = psycopg2.connect(base_url)
    connection.autocommit = True
    return connection


def _manage(url: str, *args: str, runtime_role: str = "", ok: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=url, DEBUG="1", DATABASE_RUNTIME_ROLE=runtime_role)
    done = subprocess.run(  # noqa: S603  (our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert (done.returncode == 0) is ok, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout if ok else done.stderr


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://...")
    suffix = uuid.uuid4().hex[:8]
    setup = Deployment(
        f"bizdevops_roles_{suffix}", f"bdo_owner_{suffix}", f"bdo_app_{suffix}", base
    )
    admin = _admin(base)
    parts = urlsplit(base)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{setup.database}"')
        env = {
            **os.environ,
            "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_DB": setup.database,
            "BIZDEVOPS_OWNER_ROLE": setup.owner,
            "BIZDEVOPS_OWNER_PASSWORD": f"pw-{setup.owner}",
            "BIZDEVOPS_RUNTIME_ROLE": setup.runtime,
            "BIZDEVOPS_RUNTIME_PASSWORD": f"pw-{setup.runtime}",
        }
        subprocess.run(  # noqa: S603
            ["sh", str(ROLES_SCRIPT)],  # noqa: S607
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        _manage(setup.url(setup.owner), "migrate", "--noinput", runtime_role=setup.runtime)
        assert "app work done" in _manage(setup.url(setup.runtime), "shell", "-c", APP_WORK)
        yield setup
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [setup.database],
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{setup.database}"')
            for role in (setup.runtime, setup.owner):
                cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _count(deployment: Deployment, table: str) -> int:
    connection = deployment.connect(deployment.owner)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608  (our table names)
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def _try(deployment: Deployment, role: str, sql: str) -> Exception | None:
    """Run `sql` as `role` and roll back: the error it raised, None when it worked."""
    import psycopg2

    connection = deployment.connect(role)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
        return None
    except psycopg2.Error as error:
        return error
    finally:
        connection.rollback()
        connection.close()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("table", HISTORY_TABLES)
def test_runtime_role_cannot_rewrite_history(deployment, table, attack):
    import psycopg2.errors

    before = _count(deployment, table)
    assert before >= 1  # the app's own work wrote a row as the runtime role

    error = _try(deployment, deployment.runtime, ATTACKS[attack].format(table=table))

    assert isinstance(error, psycopg2.errors.InsufficientPrivilege), error
    assert _count(deployment, table) == before


def test_runtime_role_cannot_switch_off_triggers_for_its_session(deployment):
    import psycopg2.errors

    error = _try(deployment, deployment.runtime, "SET session_replication_role = replica")

    assert isinstance(error, psycopg2.errors.InsufficientPrivilege), error
    assert "session_replication_role" in str(error)


def test_runtime_role_may_add_history_and_change_the_rest(deployment):
    connection = deployment.connect(deployment.runtime)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT title FROM initiatives_initiative")
            assert cursor.fetchall() == [("Card-fraud detection",)]  # updated by the service
            cursor.execute("UPDATE initiatives_initiative SET title = 'Renamed'")
            cursor.execute(
                "INSERT INTO notifications_alert (kind, subject, url, detail_label, detail_url,"
                " object_type, object_id, from_status, to_status, message, created_at)"
                " VALUES ('x', '', '', '', '', '', '', '', '', 'Told', now())"
            )
            cursor.execute("SELECT count(*) FROM notifications_alert")
            assert cursor.fetchone() == (2,)
    finally:
        connection.rollback()
        connection.close()


def _privileges(deployment: Deployment) -> dict[str, set[str]]:
    kinds = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    connection = deployment.connect(deployment.owner)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'django_migrations'"
            )
            tables = [name for (name,) in cursor.fetchall()]
            granted = {}
            for table in tables:
                granted[table] = {
                    kind
                    for kind in kinds
                    if cursor.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", [deployment.runtime, table, kind]
                    )
                    or cursor.fetchone()[0]
                }
            return granted
    finally:
        connection.close()


def _assert_exact_privileges(deployment: Deployment) -> None:
    granted = _privileges(deployment)
    assert len(granted) > 20
    for table, privileges in granted.items():
        if table in HISTORY_TABLES:
            assert privileges == {"SELECT", "INSERT"}, table
        else:
            assert privileges == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table


def test_runtime_role_owns_nothing_and_has_exactly_what_it_needs(deployment):
    connection = deployment.connect(deployment.runtime)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
                " WHERE rolname = current_user"
            )
            assert cursor.fetchone() == (False, False, False, False)
            cursor.execute(
                "SELECT count(*) FROM pg_class WHERE pg_has_role(current_user, relowner, 'USAGE')"
            )
            assert cursor.fetchone() == (0,)
    finally:
        connection.close()
    _assert_exact_privileges(deployment)


def test_grant_runtime_role_command_gives_the_same_privileges(deployment):
    owner = deployment.connect(deployment.owner)
    owner.autocommit = True
    with owner.cursor() as cursor:
        cursor.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{deployment.runtime}"')
        cursor.execute(f'GRANT ALL ON TABLE phases_gatedecision TO "{deployment.runtime}"')
    owner.close()

    _manage(deployment.url(deployment.owner), "grant_runtime_role", deployment.runtime)

    _assert_exact_privileges(deployment)


@pytest.mark.parametrize(
    ("who", "refusal"),
    [
        ("owner", "must own nothing"),
        ("postgres", "is (or is a member of) a superuser"),
        ("nobody", "does not exist"),
    ],
)
def test_grant_runtime_role_refuses_a_role_that_would_keep_its_power(deployment, who, refusal):
    role = {"owner": deployment.owner, "postgres": "postgres", "nobody": "bdo_nobody"}[who]

    error = _manage(deployment.url(deployment.owner), "grant_runtime_role", role, ok=False)

    assert refusal in error
    _assert_exact_privileges(deployment)  # nothing was changed


@pytest.mark.parametrize(
    ("member_of", "refusal"),
    [("owner", "must own nothing"), ("postgres", "is (or is a member of) a superuser")],
)
def test_grant_runtime_role_refuses_a_member_of_a_powerful_role(deployment, member_of, refusal):
    """A NOINHERIT member of the owner (or of a superuser) looks powerless, but may SET ROLE
    to it and then disable the triggers: it is refused like the role itself."""
    member = f"bdo_member_{uuid.uuid4().hex[:8]}"
    target = deployment.owner if member_of == "owner" else "postgres"
    admin = _admin(deployment.base_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{member}" LOGIN NOINHERIT')
            cursor.execute(f'GRANT "{target}" TO "{member}"')

        error = _manage(deployment.url(deployment.owner), "grant_runtime_role", member, ok=False)

        assert refusal in error
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{member}"')
        admin.close()


def test_a_role_granted_everything_still_cannot_truncate_or_rewrite_history(deployment):
    """A naive deployment grants the app ALL on every table: the triggers still refuse."""
    import psycopg2.errors

    naive = f"bdo_naive_{uuid.uuid4().hex[:8]}"
    owner = deployment.connect(deployment.owner)
    owner.autocommit = True
    admin = _admin(deployment.base_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE \"{naive}\" LOGIN PASSWORD 'pw-{naive}'")
            cursor.execute(f'GRANT CONNECT ON DATABASE "{deployment.database}" TO "{naive}"')
        with owner.cursor() as cursor:
            cursor.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{naive}"')
        for table in HISTORY_TABLES:
            before = _count(deployment, table)
            for sql in ("TRUNCATE {table} CASCADE", "UPDATE {table} SET id = id"):
                error = _try(deployment, naive, sql.format(table=table))
                assert isinstance(error, psycopg2.errors.IntegrityConstraintViolation), (sql, error)
                assert "append-only" in str(error)
            error = _try(deployment, naive, f"ALTER TABLE {table} DISABLE TRIGGER USER")
            assert isinstance(error, psycopg2.errors.InsufficientPrivilege), error
            assert _count(deployment, table) == before
    finally:
        with owner.cursor() as cursor:
            cursor.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{naive}"')
        owner.close()
        with admin.cursor() as cursor:
            cursor.execute(f'REVOKE ALL ON DATABASE "{deployment.database}" FROM "{naive}"')
            cursor.execute(f'DROP ROLE "{naive}"')
        admin.close()


def test_the_owner_can_rewrite_history_so_the_app_must_not_be_the_owner(deployment):
    """Why the app must not connect as the owner (as it did before: one role for everything):
    the owner can switch the triggers off and rewrite, or empty the table."""
    assert _try(deployment, deployment.owner, "TRUNCATE phases_gatedecision") is None
    assert (
        _try(
            deployment,
            deployment.owner,
            "ALTER TABLE phases_gatedecision DISABLE TRIGGER USER;"
            " UPDATE phases_gatedecision SET rationale = 'Rewritten'",
        )
        is None
    )
    assert _count(deployment, "phases_gatedecision") == 1  # both rolled back


def test_docker_compose_runs_the_app_as_the_runtime_role():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    postgres = services["postgres"]
    bootstrap = postgres["environment"]["POSTGRES_USER"]
    owner = postgres["environment"]["BIZDEVOPS_OWNER_ROLE"]
    runtime = postgres["environment"]["BIZDEVOPS_RUNTIME_ROLE"]
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert len({bootstrap, owner, runtime}) == 3

    def user(service: str) -> str:
        return urlsplit(services[service]["environment"]["DATABASE_URL"]).username or ""

    assert user("migrate") == owner
    assert services["migrate"]["environment"]["DATABASE_RUNTIME_ROLE"] == runtime
    for service in ("web", "worker", "beat"):
        assert user(service) == runtime, service
