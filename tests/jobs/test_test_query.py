"""The "Test query" button of the job form: the source runs once through the same sandbox as a
run (read-only, statement timeout, one number, the bounds of a measurement) and shows the
number or the error inline (htmx) or in the form shown again (without JavaScript); nothing is
saved, and only the team's engineers and admins may test."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jobs import services
from jobs.models import DataSource, Job, Run
from kpis import services as kpi_services
from kpis.models import KPI, Measurement
from tests.helpers import HTMX, html

pytestmark = pytest.mark.django_db

SUM = "SELECT sum(amount) FROM orders"


@pytest.fixture
def new_kpi(ops_initiative: Any, pm: Any) -> KPI:
    return kpi_services.kpi_define(
        initiative=ops_initiative, user=pm, name="Order volume", unit="EUR"
    )


def _form(source: DataSource | None, sql: str, **overrides: Any) -> dict[str, Any]:
    data = {
        "schedule_kind": "cron",
        "cron": "",
        "interval_seconds": "",
        "source_kind": "sql",
        "data_source": source.pk if source is not None else "",
        "sql": sql,
        "http_path": "",
        "json_path": "",
        "calculation": "",
        "timeout_seconds": 30,
        "max_retries": 2,
        "test": "1",
    }
    data.update(overrides)
    return data


def _result(content: str) -> str:
    match = re.search(r'<div id="test-result".*?</div>', content, re.S)
    assert match is not None, content[:3000]
    return match.group(0)


def _counts() -> tuple[int, int, int]:
    return Job.objects.count(), Run.objects.count(), Measurement.objects.count()


def test_a_query_gives_its_number_inline_and_nothing_is_saved(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    before = _counts()
    response = client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(sqlite_source, SUM), **HTMX)
    content = html(response).strip()

    assert content.startswith('<div id="test-result"')
    assert 'data-state="ok"' in content
    assert '<output class="test-value">30.5</output> EUR' in content
    assert "errorlist" not in content
    assert _counts() == before
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_an_error_of_the_database_is_shown_inline(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    before = _counts()
    content = html(
        client.post(
            f"/ops/kpis/{new_kpi.pk}/job/",
            _form(sqlite_source, "SELECT sum(nope) FROM orders"),
            **HTMX,
        )
    )
    assert 'data-state="error"' in content
    assert "The database refused the query: no such column: nope" in content
    assert _counts() == before


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("DELETE FROM orders", "Only a SELECT query is allowed."),
        ("SELECT 1; SELECT 2", "Only one statement is allowed"),
        ("", "The query is empty."),
        ("SELECT id, amount FROM orders", "The query returned 2 columns"),
        ("SELECT amount FROM orders", "more than one row"),
        ("SELECT channel FROM orders WHERE id = 1", "gave a text value, not a number"),
        ("SELECT 1e300 * 1e10", "infinite or NaN"),
    ],
)
def test_what_a_run_refuses_the_test_refuses(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource, sql: str, error: str
) -> None:
    client.force_login(engineer)
    response = client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(sqlite_source, sql), **HTMX)
    assert response.status_code in (200, 400)
    result = _result(response.content.decode())
    assert error in result, result
    assert 'data-state="error"' in result
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_a_value_out_of_the_measurement_bounds_is_refused_as_for_a_run(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    content = html(
        client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(sqlite_source, "SELECT 1e20"), **HTMX)
    )
    assert "The result was refused:" in _result(content)


def test_a_sql_test_needs_a_database_source(client: Any, engineer: Any, new_kpi: KPI) -> None:
    client.force_login(engineer)
    response = client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(None, SUM), **HTMX)
    assert response.status_code == 400
    assert "A SQL query needs a database (sql) data source." in _result(response.content.decode())


def test_without_javascript_the_form_comes_back_with_the_result(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    content = html(client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(sqlite_source, SUM)))
    assert "<html" in content
    assert "Register the job of" in content
    assert '<output class="test-value">30.5</output>' in _result(content)
    assert f"{SUM}</textarea>" in content  # what was typed is kept
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_the_edit_form_of_a_job_tests_what_is_typed_without_saving(
    client: Any, engineer: Any, sql_job: Job, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    before = (sql_job.sql, sql_job.runs.count())
    sql = "SELECT count(*) FROM orders"
    response = client.post(
        f"/ops/jobs/{sql_job.pk}/",
        _form(sqlite_source, sql, schedule_kind="interval", interval_seconds=300),
        **HTMX,
    )
    assert '<output class="test-value">3</output>' in html(response)
    sql_job.refresh_from_db()
    assert (sql_job.sql, sql_job.runs.count()) == before

    # Without JavaScript: the job page again, its edit form open with the result.
    content = html(
        client.post(
            f"/ops/jobs/{sql_job.pk}/",
            _form(sqlite_source, sql, schedule_kind="interval", interval_seconds=300),
        )
    )
    assert "<details open>" in content
    assert '<output class="test-value">3</output>' in _result(content)
    sql_job.refresh_from_db()
    assert sql_job.sql == before[0]


def test_a_python_calculation_is_tested_too(client: Any, engineer: Any, new_kpi: KPI) -> None:
    client.force_login(engineer)
    data = _form(None, "", source_kind="python", calculation="portfolio.initiatives_in_ops")
    content = html(client.post(f"/ops/kpis/{new_kpi.pk}/job/", data, **HTMX))
    assert '<output class="test-value">1</output>' in content  # the one initiative in Ops


@pytest.mark.parametrize("who", ["pm", "stakeholder", "scientist", "engineer2"])
def test_only_the_team_engineers_and_admins_may_test(
    request: pytest.FixtureRequest,
    client: Any,
    new_kpi: KPI,
    sql_job: Job,
    sqlite_source: DataSource,
    who: str,
) -> None:
    client.force_login(request.getfixturevalue(who))
    for url in (f"/ops/kpis/{new_kpi.pk}/job/", f"/ops/jobs/{sql_job.pk}/"):
        for extra in ({}, HTMX):
            response = client.post(url, _form(sqlite_source, SUM), **extra)
            assert response.status_code in (403, 404), (who, url, response.status_code)
            assert b"30.5" not in response.content


def test_an_admin_may_test(
    client: Any, admin_user: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(admin_user)
    content = html(client.post(f"/ops/kpis/{new_kpi.pk}/job/", _form(sqlite_source, SUM), **HTMX))
    assert '<output class="test-value">30.5</output>' in content


def test_tests_are_limited_per_minute(
    client: Any,
    engineer: Any,
    new_kpi: KPI,
    sqlite_source: DataSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "TESTS_PER_MINUTE", 2)
    client.force_login(engineer)
    url = f"/ops/kpis/{new_kpi.pk}/job/"
    for _ in range(2):
        assert "30.5" in html(client.post(url, _form(sqlite_source, SUM), **HTMX))
    response = client.post(url, _form(sqlite_source, SUM), **HTMX)
    assert response.status_code == 400
    assert "At most 2 tests a minute" in _result(response.content.decode())


def test_no_error_is_shown_before_anything_is_typed(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    content = html(client.get(f"/ops/kpis/{new_kpi.pk}/job/"))
    assert "errorlist" not in content
    assert re.search(
        r'<div id="test-result" class="test-result" aria-live="polite">\s*</div>', content
    )
    # The schedule preview asks only once something is typed (an empty cron is an error).
    assert 'hx-trigger="input delay:400ms"' in content
    assert "Test query</button>" in content


def test_the_edit_form_previews_the_schedule_it_has_on_load(
    client: Any, engineer: Any, sql_job: Job
) -> None:
    client.force_login(engineer)
    content = html(client.get(f"/ops/jobs/{sql_job.pk}/"))
    assert 'hx-trigger="load, input delay:400ms"' in content


@pytest.mark.postgres
def test_the_test_runs_in_the_sandbox_with_the_statement_timeout(
    client: Any, engineer: Any, admin_user: Any, new_kpi: KPI, pg_scratch: tuple[str, str]
) -> None:
    url, table = pg_scratch
    source = services.data_source_save(user=admin_user, name="Scratch", kind="database", url=url)
    client.force_login(engineer)
    post = f"/ops/kpis/{new_kpi.pk}/job/"

    content = html(client.post(post, _form(source, f"SELECT sum(n) FROM {table}"), **HTMX))  # noqa: S608
    assert '<output class="test-value">6</output>' in content

    slow = _form(source, "SELECT 1 FROM pg_sleep(5)", timeout_seconds=1)
    content = html(client.post(post, slow, **HTMX))
    assert "The query ran longer than 1 s and was stopped." in content

    locking = _form(source, f"SELECT n FROM {table} WHERE n = 1 FOR UPDATE")  # noqa: S608
    content = html(client.post(post, locking, **HTMX), 400)
    assert "a locking clause (FOR UPDATE, FOR SHARE) is not allowed" in content
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_the_test_timeout_is_capped(engineer: Any, new_kpi: KPI, sqlite_source: DataSource) -> None:
    result = services.job_test(
        kpi=new_kpi,
        user=engineer,
        source_kind="sql",
        data_source=sqlite_source,
        sql=SUM,
        timeout_seconds=600,
    )
    assert (result.value, result.timeout) == (30.5, services.TEST_TIMEOUT_MAX_SECONDS)
