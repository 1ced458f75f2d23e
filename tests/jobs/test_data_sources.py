from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import connection

from bizdevops.errors import DomainError
from jobs.models import DataSource, RunState
from jobs.services import data_source_save, job_update, run_execute, run_request
from jobs.sources import SourceError, data_source_url, run_sql
from kpis.models import Measurement

pytestmark = pytest.mark.django_db

SECRET_URL = "postgres://reader:Sup3rS3cret@db.example.com:5432/warehouse?sslmode=require"


def _stored_column(source: DataSource) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT url_encrypted, display_url FROM {DataSource._meta.db_table} WHERE id = %s",  # noqa: S608
            [source.pk],
        )
        return " ".join(cursor.fetchone())


# Who


@pytest.mark.parametrize("who", ["pm", "engineer", "devops", "stakeholder", "scientist"])
def test_only_admins_manage_data_sources(request, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        data_source_save(user=user, name="Warehouse", kind="database", url=SECRET_URL)

    assert not DataSource.objects.exists()


def test_only_admins_change_data_sources(admin_user, engineer):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    with pytest.raises(PermissionDenied):
        data_source_save(
            user=engineer, name="Warehouse", kind="database", url="sqlite:////x", source=source
        )

    assert data_source_url(DataSource.objects.get()) == SECRET_URL


# Secrets at rest


def test_url_is_stored_encrypted_and_shown_without_credentials(admin_user):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    stored = _stored_column(source)
    assert "Sup3rS3cret" not in stored
    assert "reader" not in stored
    assert "sslmode" not in stored
    source.refresh_from_db()
    assert source.url_encrypted
    assert SECRET_URL not in source.url_encrypted
    assert source.display_url == "postgres://db.example.com:5432/warehouse"
    assert source.url_env == ""
    assert data_source_url(source) == SECRET_URL


def test_http_url_query_string_is_not_shown(admin_user):
    source = data_source_save(
        user=admin_user,
        name="API",
        kind="http",
        url="https://user:pw@api.example.com/v1/?token=t0ken",
    )

    assert source.display_url == "https://api.example.com/v1/"
    assert "t0ken" not in _stored_column(source)


def test_sqlite_display_url_shows_the_absolute_path(admin_user, warehouse):
    source = data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=f"sqlite:///{warehouse}"
    )

    assert source.display_url == f"sqlite:///{warehouse}"


def test_ciphertext_differs_for_the_same_url(admin_user):
    first = data_source_save(user=admin_user, name="A", kind="database", url=SECRET_URL)
    second = data_source_save(user=admin_user, name="B", kind="database", url=SECRET_URL)

    assert first.url_encrypted != second.url_encrypted


def test_change_without_url_keeps_the_stored_one(admin_user):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)
    token = source.url_encrypted

    data_source_save(
        user=admin_user,
        name="Warehouse (prod)",
        kind="database",
        description="Nightly copy",
        source=source,
    )

    source.refresh_from_db()
    assert source.name == "Warehouse (prod)"
    assert source.description == "Nightly copy"
    assert source.url_encrypted == token
    assert data_source_url(source) == SECRET_URL


def test_change_with_a_new_url_replaces_it(admin_user):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    data_source_save(
        user=admin_user,
        name="Warehouse",
        kind="database",
        url="postgres://other:pw2@db2.example.com/w",
        source=source,
    )

    source.refresh_from_db()
    assert data_source_url(source) == "postgres://other:pw2@db2.example.com/w"
    assert source.display_url == "postgres://db2.example.com/w"


def test_without_debug_and_without_a_key_saving_a_url_is_refused(admin_user, settings):
    settings.DEBUG = False
    settings.DATA_SOURCE_KEY = ""

    with pytest.raises(ImproperlyConfigured, match="DATA_SOURCE_KEY"):
        data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    assert not DataSource.objects.exists()


def test_without_a_key_an_environment_variable_still_works(admin_user, settings, monkeypatch):
    settings.DEBUG = False
    settings.DATA_SOURCE_KEY = ""
    monkeypatch.setenv("KPI_TEST_WAREHOUSE_URL", SECRET_URL)

    source = data_source_save(
        user=admin_user, name="Warehouse", kind="database", url_env="KPI_TEST_WAREHOUSE_URL"
    )

    assert data_source_url(source) == SECRET_URL


def test_with_a_key_and_without_debug_the_url_is_encrypted(admin_user, settings):
    settings.DEBUG = False
    settings.DATA_SOURCE_KEY = Fernet.generate_key().decode()

    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    assert Fernet(settings.DATA_SOURCE_KEY).decrypt(source.url_encrypted.encode()).decode() == (
        SECRET_URL
    )


def test_debug_without_a_key_uses_a_development_key(admin_user, settings):
    settings.DEBUG = True
    settings.DATA_SOURCE_KEY = ""

    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    assert "Sup3rS3cret" not in source.url_encrypted
    assert data_source_url(source) == SECRET_URL


def test_a_changed_key_makes_the_url_unreadable(admin_user, settings):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)
    settings.DATA_SOURCE_KEY = Fernet.generate_key().decode()

    with pytest.raises(ImproperlyConfigured, match="Enter the URL again"):
        data_source_url(source)


# Environment variables


def test_url_env_is_read_at_run_time(admin_user, warehouse, monkeypatch):
    source = data_source_save(
        user=admin_user, name="Warehouse", kind="database", url_env="KPI_TEST_WAREHOUSE_URL"
    )
    assert source.url_encrypted == ""
    assert source.display_url == "$KPI_TEST_WAREHOUSE_URL"

    monkeypatch.setenv("KPI_TEST_WAREHOUSE_URL", f"sqlite:///{warehouse}")
    assert run_sql(source, "SELECT count(*) FROM orders", 5) == 3.0


def test_missing_environment_variable_fails_the_run(ops_job, engineer, admin_user, monkeypatch):
    monkeypatch.delenv("KPI_TEST_UNSET_URL", raising=False)
    source = data_source_save(
        user=admin_user, name="Warehouse", kind="database", url_env="KPI_TEST_UNSET_URL"
    )
    job_update(job=ops_job, user=engineer, source_kind="sql", data_source=source, sql="SELECT 1")

    with pytest.raises(SourceError, match="KPI_TEST_UNSET_URL is not set"):
        data_source_url(source)

    run = run_request(job=ops_job, user=engineer)
    assert run_execute(run_id=run.pk).state == RunState.FAILED
    run.refresh_from_db()
    assert "KPI_TEST_UNSET_URL is not set" in run.error
    assert run.attempt == 1
    assert not Measurement.objects.exists()


def test_switching_to_an_environment_variable_drops_the_stored_url(admin_user):
    source = data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    data_source_save(
        user=admin_user, name="Warehouse", kind="database", url_env="WAREHOUSE_URL", source=source
    )

    source.refresh_from_db()
    assert (source.url_env, source.url_encrypted) == ("WAREHOUSE_URL", "")
    assert "Sup3rS3cret" not in _stored_column(source)


# Validation


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "  ", "kind": "database", "url": SECRET_URL}, "name"),
        ({"name": "X", "kind": "ftp", "url": SECRET_URL}, "kind"),
        ({"name": "X", "kind": "database", "url": "mysql://u:p@h/d"}, "url"),
        ({"name": "X", "kind": "database", "url": "https://example.com/"}, "url"),
        ({"name": "X", "kind": "http", "url": SECRET_URL}, "url"),
        ({"name": "X", "kind": "database"}, "url"),
        ({"name": "X", "kind": "database", "url": SECRET_URL, "url_env": "DB_URL"}, "url"),
        ({"name": "X", "kind": "database", "url_env": "DB-URL"}, "url_env"),
        ({"name": "X", "kind": "database", "url_env": "$(rm -rf /)"}, "url_env"),
    ],
)
def test_data_source_validation(admin_user, values, field):
    with pytest.raises(DomainError) as excinfo:
        data_source_save(user=admin_user, **values)

    assert excinfo.value.field == field
    assert not DataSource.objects.exists()


def test_names_are_unique_case_insensitively(admin_user):
    data_source_save(user=admin_user, name="Warehouse", kind="database", url=SECRET_URL)

    with pytest.raises(DomainError) as excinfo:
        data_source_save(user=admin_user, name=" warehouse ", kind="database", url=SECRET_URL)

    assert excinfo.value.field == "name"
    assert DataSource.objects.count() == 1
