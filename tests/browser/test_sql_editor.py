"""The job form's SQL editor in a real browser, under the Content-Security-Policy: CodeMirror
replaces the textarea (which it keeps in sync), the schema browser of the only data source
loads with the page and a click on a column inserts it, "Test query" shows the number inline,
and a trial run that finishes refreshes the run history below the state box. At 1366 px the
history shows value and error without scrolling sideways."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from initiatives.models import Initiative, Phase
from jobs import services as job_services
from jobs.models import DataSource, Job, Run, RunState
from kpis import services as kpi_services
from phases.models import Decision
from tests.browser.conftest import BROWSER_DB, login
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.factories import decide

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run ids sent to the workers (kept out of any broker; the test executes them)."""
    sent: list[int] = []

    def send(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        assert name == job_services.EXECUTE_RUN, name
        sent.append(args[0])

    monkeypatch.setattr("bizdevops.outbox.send", send)
    return sent


@pytest.fixture
def dev_initiative(ready_initiative: Initiative, pm: Any) -> Initiative:
    initiative = decide(ready_initiative, Decision.GO, pm)
    assert initiative.phase == Phase.DEV
    return initiative


@pytest.fixture
def warehouse_source(admin_user: Any, tmp_path: Path) -> DataSource:
    path = tmp_path / "warehouse.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, channel TEXT)")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, 10.0, "card"), (2, 20.5, "card")]
        )
        db.commit()
    return job_services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=f"sqlite:///{path}"
    )


def _no_violations(page: Page) -> None:
    assert page.evaluate("window.__cspViolations") == []


def test_the_editor_schema_browser_and_test_query(
    page: Page,
    engineer: Any,
    pm: Any,
    dev_initiative: Initiative,
    warehouse_source: DataSource,
) -> None:
    kpi = kpi_services.kpi_define(
        initiative=dev_initiative, user=pm, name="Order volume", unit="EUR"
    )
    page.context.add_init_script(RECORD_VIOLATIONS)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "engineer", "pw")
    page.goto(f"/ops/kpis/{kpi.pk}/job/")
    page.evaluate("window.__sameDocument = true")

    # The editor stands in for the textarea, which stays the (hidden) form field.
    editor = page.locator(".cm-editor .cm-content")
    expect(editor).to_be_visible()
    expect(page.locator("textarea[name=sql]")).to_be_hidden()
    expect(page.get_by_role("textbox", name="SQL query")).to_be_visible()
    # No error before anything is typed.
    expect(page.locator(".errorlist")).to_have_count(0)

    # The only data source is chosen, and its tables are there.
    expect(page.locator("#id_data_source")).to_have_value(str(warehouse_source.pk))
    browser_panel = page.locator("#schema-browser")
    expect(browser_panel.locator("summary", has_text="orders")).to_be_visible()

    editor.click()
    # Our class (the stylesheet's border, focus ring, token colours) survives CodeMirror's own.
    expect(page.locator(".cm-editor.sql-editor.cm-focused")).to_have_count(1)
    page.keyboard.type("SELECT sum(")
    browser_panel.locator("summary", has_text="orders").click()
    browser_panel.get_by_role("button", name="amount", exact=True).click()
    page.keyboard.press("End")
    page.keyboard.type(" FROM orders")
    page.keyboard.press("Escape")  # close a completion list, if one is open
    textarea = page.locator("textarea[name=sql]")
    expect(textarea).to_have_value("SELECT sum(amount) FROM orders")
    expect(page.locator(".cm-editor")).to_contain_text("SELECT sum(amount) FROM orders")
    # SQL highlighting: the keyword is a token of its own.
    assert page.locator(".cm-line span", has_text="SELECT").count() >= 1

    page.get_by_role("button", name="Test query").click()
    result = page.locator("#test-result")
    expect(result).to_have_attribute("data-state", "ok")
    expect(result.locator("output")).to_have_text("30.5")
    assert not Job.objects.filter(kpi=kpi).exists()

    # A query the database refuses: its error, inline.
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("SELECT sum(nope) FROM orders")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Test query").click()
    expect(result).to_have_attribute("data-state", "error")
    expect(result).to_contain_text("no such column: nope")
    assert page.evaluate("window.__sameDocument") is True

    # The form posts what the editor holds.
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("SELECT count(*) FROM orders")
    page.keyboard.press("Escape")
    page.get_by_role("textbox", name="Cron").fill("0 6 * * *")
    page.get_by_role("button", name="Register job").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Job of “Order volume”")
    job = Job.objects.get(kpi=kpi)
    assert (job.sql, job.data_source_id) == ("SELECT count(*) FROM orders", warehouse_source.pk)
    _no_violations(page)


def test_a_finished_trial_run_refreshes_the_history(
    page: Page, engineer: Any, dev_initiative: Initiative, enqueued: list[int]
) -> None:
    kpi = dev_initiative.kpis.get(name="Fraud caught")
    job = job_services.job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="cron",
        cron="0 6 * * *",
        source_kind="python",
        calculation="portfolio.decisions_last_30_days",
    )
    page.context.add_init_script(RECORD_VIOLATIONS)
    login(page, "engineer", "pw")
    page.goto(f"/ops/jobs/{job.pk}/")
    expect(page.locator("#runs")).to_contain_text("No run yet.")
    expect(page.locator(".cm-editor")).to_have_count(1)  # in the (closed) edit form
    page.evaluate("window.__sameDocument = true")

    page.get_by_role("button", name="Trial run").click()
    expect(page.locator("#run-status")).to_have_attribute("data-state", "queued")
    run = Run.objects.get(job=job)
    row = page.locator(f'#runs tr[data-run="{run.pk}"]')
    expect(row).to_contain_text("Queued")  # queuing refreshed the history

    assert job_services.run_execute(run_id=run.pk, worker="browser-test").state == (
        RunState.SUCCEEDED
    )
    expect(page.locator("#run-status")).to_have_attribute("data-state", "succeeded")
    expect(row).to_contain_text("Succeeded")
    expect(row.locator(".value-cell")).to_have_text("1.0000")
    # The trial result flags the unit: the KPI is in %, the calculation counts decisions.
    expect(page.locator("#run-status .unit-warning")).to_contain_text("returns decisions")
    assert page.evaluate("window.__sameDocument") is True
    _no_violations(page)


def test_the_history_shows_value_and_error_at_1366_px(
    page: Page, engineer: Any, dev_initiative: Initiative
) -> None:
    kpi = dev_initiative.kpis.get(name="Fraud caught")
    job = job_services.job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="cron",
        cron="0 6 * * *",
        source_kind="python",
        calculation="portfolio.decisions_last_30_days",
    )
    now = timezone.now()
    long_error = "The database refused the query (42P01: undefined table). " * 12
    failed = Run.objects.create(
        job=job, scheduled_for=now, state=RunState.FAILED, error=long_error, attempt=3
    )
    done = Run.objects.create(
        job=job,
        scheduled_for=now - dt.timedelta(minutes=5),
        state=RunState.SUCCEEDED,
        value=12345.6789,
        attempt=1,
    )
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "engineer", "pw")
    page.goto(f"/ops/jobs/{job.pk}/")

    wrap = page.locator(".run-history")
    expect(wrap).to_be_visible()
    sizes = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert sizes[0] <= sizes[1], sizes  # no column hidden behind a sideways scroll
    expect(page.locator(f'tr[data-run="{done.pk}"] .value-cell')).to_be_visible()
    expect(page.locator(f'tr[data-run="{done.pk}"] .value-cell')).to_have_text("12345.6789")
    error = page.locator(f'tr[data-run="{failed.pk}"] .error-cell')
    expect(error).to_be_visible()
    expect(error.locator("summary")).to_contain_text("The database refused the query")
    error.locator("summary").click()
    expect(error.locator("details p")).to_be_visible()
    sizes = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert sizes[0] <= sizes[1], sizes  # the opened error wraps

    # Filters without a reload, in the URL.
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("State").select_option("failed")
    expect(page.locator("#runs tr[data-run]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?state=failed"))
    assert page.evaluate("window.__sameDocument") is True
