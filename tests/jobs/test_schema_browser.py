"""The schema browser of the job form: the tables and columns of the chosen database data
source, read through the data source's own connection (a least-privileged PostgreSQL role
sees only what it may read), cached per data source and URL, and only for who may edit the
KPI's job."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from jobs import services
from jobs.models import DataSource
from kpis import services as kpi_services
from kpis.models import KPI
from tests.helpers import HTMX, html
from tests.jobs.helpers import pg_drop_role, pg_execute, postgres_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_kpi(ops_initiative: Any, pm: Any) -> KPI:
    return kpi_services.kpi_define(
        initiative=ops_initiative, user=pm, name="False alarms", unit="%"
    )


def _schema_url(kpi: KPI, source: DataSource | None = None) -> str:
    url = f"/ops/kpis/{kpi.pk}/schema/"
    return f"{url}?data_source={source.pk}" if source is not None else url


def _completion(content: str) -> Any:
    match = re.search(r'<script id="schema-data" type="application/json">(.*?)</script>', content)
    assert match is not None, content[:2000]
    return json.loads(match.group(1))


def _inserts(content: str) -> list[str]:
    return re.findall(r'data-insert="([^"]+)"', content)


def test_the_panel_lists_tables_and_columns_of_a_sqlite_source(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    content = html(client.get(_schema_url(new_kpi, sqlite_source), **HTMX)).strip()

    assert content.startswith('<div id="schema-browser"')
    assert "<html" not in content
    assert 'data-dialect="sqlite"' in content
    assert "<summary>orders</summary>" in content
    assert _inserts(content) == ["orders", "id", "amount", "channel"]
    assert "REAL" in content  # the column's type
    assert _completion(content) == {"orders": ["id", "amount", "channel"]}
    # The swapped panel listens for the next change only (no load loop).
    assert 'hx-trigger="change from:#id_data_source"' in content


def test_without_javascript_the_panel_is_a_page_with_every_database_source(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    services.data_source_save(
        user=admin_user, name="Partner API", kind="http", url="https://api.example.com"
    )
    client.force_login(engineer)
    content = html(client.get(_schema_url(new_kpi, sqlite_source)))
    assert "<html" in content
    assert "<summary>orders</summary>" in content
    assert f'href="?data_source={sqlite_source.pk}" aria-current="page">Warehouse</a>' in content
    assert "Partner API" not in content  # not a database
    assert "hx-get" not in content.split('id="schema-browser"')[1].split(">")[0]


def test_an_http_or_unknown_source_asks_for_a_database_one(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI
) -> None:
    http = services.data_source_save(
        user=admin_user, name="Partner API", kind="http", url="https://api.example.com"
    )
    client.force_login(engineer)
    for chosen in (str(http.pk), "999999", "abc"):
        content = html(client.get(_schema_url(new_kpi), {"data_source": chosen}, **HTMX))
        assert "Choose a database data source to see its tables." in content
        assert "schema-data" not in content
    # Nothing chosen: a hint, no error.
    content = html(client.get(_schema_url(new_kpi), **HTMX))
    assert "Choose a data source to see its tables and columns." in content
    assert "errorlist" not in content


def test_an_unreachable_source_shows_its_error_and_is_not_cached(
    client: Any, engineer: Any, new_kpi: KPI, admin_user: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "later.sqlite3"
    source = services.data_source_save(
        user=admin_user, name="Later", kind="database", url=f"sqlite:///{missing}"
    )
    client.force_login(engineer)
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))
    assert "Cannot open the database file" in content

    with closing(sqlite3.connect(missing)) as db:
        db.execute("CREATE TABLE visits (day TEXT, n INTEGER)")
        db.commit()
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))
    assert _inserts(content) == ["visits", "day", "n"]


def test_the_schema_is_cached_per_data_source_and_url(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, warehouse: Path, tmp_path: Path
) -> None:
    source = services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=f"sqlite:///{warehouse}"
    )
    client.force_login(engineer)
    assert "<summary>orders</summary>" in html(client.get(_schema_url(new_kpi, source), **HTMX))

    with closing(sqlite3.connect(warehouse)) as db:
        db.execute("CREATE TABLE refunds (id INTEGER, amount REAL)")
        db.commit()
    # Within the cache's minutes the catalogue is not read again.
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))
    assert "refunds" not in content

    # Another URL is another key: read afresh.
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(warehouse.read_bytes())
    services.data_source_save(
        user=admin_user,
        name="Warehouse",
        kind="database",
        url=f"sqlite:///{copy}",
        source=source,
    )
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))
    assert "<summary>refunds</summary>" in content


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("pm", 403),  # the accountable PM sees the KPI, not the data source's tables
        ("stakeholder", 403),
        ("scientist", 403),
        ("engineer2", 403),  # a data engineer who is not on the team
    ],
)
def test_only_who_may_edit_the_job_reads_the_schema(
    request: pytest.FixtureRequest,
    client: Any,
    new_kpi: KPI,
    sqlite_source: DataSource,
    who: str,
    status: int,
) -> None:
    client.force_login(request.getfixturevalue(who))
    for extra in ({}, HTMX):
        response = client.get(_schema_url(new_kpi, sqlite_source), **extra)
        assert response.status_code in (status, 404), (who, response.status_code)
        assert b"orders" not in response.content
        assert b"amount" not in response.content


@pytest.mark.parametrize("who", ["engineer", "admin_user"])
def test_the_team_engineer_and_admins_read_the_schema(
    request: pytest.FixtureRequest,
    client: Any,
    new_kpi: KPI,
    sqlite_source: DataSource,
    who: str,
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert "<summary>orders</summary>" in html(
        client.get(_schema_url(new_kpi, sqlite_source), **HTMX)
    )


def test_the_schema_page_is_get_only(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    assert client.post(_schema_url(new_kpi, sqlite_source)).status_code == 405


def test_the_job_form_loads_the_panel_of_the_only_data_source(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    content = html(client.get(f"/ops/kpis/{new_kpi.pk}/job/"))
    # The only data source is chosen already, and its tables load with the page.
    assert f'<option value="{sqlite_source.pk}" selected>Warehouse</option>' in content
    assert f'hx-get="/ops/kpis/{new_kpi.pk}/schema/"' in content
    assert 'hx-trigger="load, change from:#id_data_source"' in content
    assert 'hx-include="#id_data_source"' in content
    # Without JavaScript, a link to the tables.
    assert f'href="/ops/kpis/{new_kpi.pk}/schema/?data_source={sqlite_source.pk}"' in content
    # The textarea stays the field; the editor script takes it over.
    assert re.search(r'<textarea name="sql"[^>]*data-sql-editor', content)
    assert "vendor/codemirror/codemirror-sql.min.js" in content


def test_with_several_sources_none_is_chosen_and_no_panel_loads(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    services.data_source_save(
        user=admin_user, name="Archive", kind="database", url="sqlite:////nonexistent.db"
    )
    client.force_login(engineer)
    content = html(client.get(f"/ops/kpis/{new_kpi.pk}/job/"))
    select = content.split('name="data_source"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\d*)" selected>', select) == [""]
    assert 'hx-trigger="change from:#id_data_source"' in content
    assert "Choose a data source to see its tables and columns." in content


def test_the_only_database_source_is_chosen_beside_http_ones(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    services.data_source_save(
        user=admin_user, name="Partner API", kind="http", url="https://api.example.com"
    )
    client.force_login(engineer)
    content = html(client.get(f"/ops/kpis/{new_kpi.pk}/job/"))
    assert f'<option value="{sqlite_source.pk}" selected>Warehouse</option>' in content


# PostgreSQL: the role's own view of the catalogue ----------------------------------------


@pytest.fixture
def pg_reader(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """(URL of a role that may read one table of two in its schema, the schema)."""
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"kpi_browse_{suffix}", f"kpi_browser_{suffix}"
    try:
        pg_execute(
            pg_admin_url,
            f"CREATE SCHEMA {schema}",
            f"CREATE TABLE {schema}.facts (n integer PRIMARY KEY, label text)",
            f"CREATE TABLE {schema}.salaries (person text, amount numeric)",
            f"CREATE ROLE {role} LOGIN",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT ON {schema}.facts TO {role}",
        )
        yield postgres_url(connection.settings_dict, user=role), schema
    finally:
        pg_execute(pg_admin_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg_drop_role(pg_admin_url, role)


@pytest.mark.postgres
def test_a_least_privileged_role_sees_only_the_tables_it_may_read(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, pg_reader: tuple[str, str]
) -> None:
    url, schema = pg_reader
    source = services.data_source_save(user=admin_user, name="Reader", kind="database", url=url)
    client.force_login(engineer)
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))

    assert 'data-dialect="postgresql"' in content
    assert f"<summary>{schema}.facts</summary>" in content
    assert _inserts(content) == [f"{schema}.facts", "n", "label"]
    assert _completion(content) == {schema: {"facts": ["n", "label"]}}
    # Neither the table it may not read, nor the app's own tables in public.
    assert "salaries" not in content
    assert "auth_user" not in content
    assert "jobs_datasource" not in content


@pytest.mark.postgres
def test_a_privileged_role_is_refused_as_for_a_run(
    client: Any, engineer: Any, new_kpi: KPI, pg_admin_url: str
) -> None:
    # Stored directly: data_source_save refuses such a role, a run and the browser refuse it
    # too when its role changed after the save.
    from bizdevops import crypto
    from jobs.models import DataSourceKind

    source = DataSource.objects.create(
        name="Superuser",
        kind=DataSourceKind.DATABASE,
        url_encrypted=crypto.encrypt(pg_admin_url),
        display_url=crypto.redact(pg_admin_url),
    )
    client.force_login(engineer)
    content = html(client.get(_schema_url(new_kpi, source), **HTMX))
    assert "A data source must log in as a role that can only read" in content
    assert "auth_user" not in content
