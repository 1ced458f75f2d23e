"""The Ops job page in a real browser: a trial run is queued, its state box polls the server
by itself and shows the result once the run has executed, without a reload; the job form
previews the next fire times of the schedule being typed.

No Celery worker runs here: the enqueueing is recorded instead of sent, and the test executes
the run itself through the service, as a worker would."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from initiatives.models import Initiative, Phase
from jobs import services as job_services
from jobs.models import Job, Run, RunState, Trigger
from kpis import services as kpi_services
from phases.models import Decision
from tests.browser.conftest import BROWSER_DB, login
from tests.factories import decide

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run ids sent to the workers. The live server runs in this process, so replacing the
    task's sender keeps messages out of the development broker (var/celery)."""
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
def dev_job(dev_initiative: Initiative, engineer: Any) -> Job:
    """A Python calculation (no external data): gate decisions in the last 30 days, i.e. 1."""
    kpi = dev_initiative.kpis.get(name="Fraud caught")
    return job_services.job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="cron",
        cron="0 6 * * *",
        source_kind="python",
        calculation="portfolio.decisions_last_30_days",
    )


def test_trial_run_state_updates_by_itself(
    page: Page, engineer: Any, dev_job: Job, enqueued: list[int]
) -> None:
    login(page, "engineer", "pw")
    page.goto(f"/ops/jobs/{dev_job.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Job of “Fraud caught”")
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)  # Dev: trial only
    page.evaluate("window.__sameDocument = true")

    status = page.locator("#run-status")
    page.get_by_role("button", name="Trial run").click()
    expect(status).to_have_attribute("data-state", "queued")
    expect(status).to_contain_text("Queued")
    expect(status).to_contain_text("updates by itself")

    run = Run.objects.get(job=dev_job)
    assert (run.trigger, run.state, run.requested_by_id) == (
        Trigger.TRIAL,
        RunState.QUEUED,
        engineer.pk,
    )
    assert enqueued == [run.pk]
    expect(status).to_contain_text(f"Trial run #{run.pk}")

    # The box polls while the run is queued: no worker has taken it, it stays queued.
    with page.expect_request(
        lambda r: r.url.endswith(f"/ops/runs/{run.pk}/") and r.headers.get("hx-request") == "true"
    ):
        pass
    expect(status).to_have_attribute("data-state", "queued")

    outcome = job_services.run_execute(run_id=run.pk, worker="browser-test")
    assert outcome.state == RunState.SUCCEEDED

    expect(status).to_have_attribute("data-state", "succeeded")
    expect(status).to_contain_text("Succeeded")
    expect(status.locator("strong")).to_have_text("1.0000")
    expect(status).not_to_contain_text("updates by itself")
    assert status.get_attribute("hx-trigger") is None  # polling stopped
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert enqueued == [run.pk]


def test_job_form_previews_the_schedule(
    page: Page, engineer: Any, pm: Any, dev_initiative: Initiative
) -> None:
    kpi = kpi_services.kpi_define(initiative=dev_initiative, user=pm, name="False alarms", unit="%")
    login(page, "engineer", "pw")
    page.goto(f"/ops/kpis/{kpi.pk}/job/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Register the job of “False alarms”")
    page.evaluate("window.__sameDocument = true")

    preview = page.locator("#schedule-preview")
    times = preview.locator("li time")
    with page.expect_request(
        lambda r: "/ops/schedule-preview/?" in r.url and "15" in r.url
    ) as request:
        page.get_by_role("textbox", name="Cron").fill("*/15 * * * *")
    assert request.value.headers.get("hx-request") == "true"
    expect(times).to_have_count(5)
    for datetime in times.evaluate_all("times => times.map(t => t.getAttribute('datetime'))"):
        assert re.search(r"T\d\d:(00|15|30|45):00", datetime), datetime
    expect(preview.locator(".errorlist")).to_have_count(0)

    page.get_by_role("textbox", name="Cron").fill("61 * * * *")
    expect(preview.locator(".errorlist")).to_contain_text("is not a valid cron expression")
    expect(times).to_have_count(0)

    page.get_by_role("radio", name="Fixed interval").check()
    page.get_by_role("spinbutton", name="Interval (seconds)").fill("600")
    expect(times).to_have_count(5)
    expect(preview.locator(".errorlist")).to_have_count(0)

    page.get_by_role("spinbutton", name="Interval (seconds)").fill("5")
    expect(preview.locator(".errorlist")).to_contain_text("between 10 seconds and 366 days")
    assert page.evaluate("window.__sameDocument") is True


def test_a_refused_trial_run_says_why_and_the_page_keeps_working(
    page: Page, engineer: Any, pm: Any, dev_job: Job, enqueued: list[int]
) -> None:
    login(page, "engineer", "pw")
    page.goto(f"/ops/jobs/{dev_job.pk}/")
    trial = page.get_by_role("button", name="Trial run")
    expect(trial).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    # Meanwhile the program manager puts the initiative on hold: the page is stale, and the
    # trial run is refused (409).
    initiative = decide(dev_job.kpi.initiative, Decision.HOLD, pm)
    with page.expect_response(lambda r: r.url.endswith(f"/ops/jobs/{dev_job.pk}/runs/")) as info:
        trial.click()
    assert info.value.status == 409
    expect(page.get_by_text("is not active in Dev or Ops.")).to_be_visible()
    assert not Run.objects.filter(job=dev_job).exists()
    assert enqueued == []

    # The refusal is shown inside the job page, not a second page nested in it.
    expect(page.locator(".topnav")).to_have_count(1)
    expect(page.locator("main")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_have_text("Job of “Fraud caught”")

    # Once resumed, a trial run from the same page (no reload) is queued and shown.
    decide(initiative, Decision.RESUME, pm)
    trial.click()
    expect(page.locator("#run-status")).to_have_attribute("data-state", "queued")
    run = Run.objects.get(job=dev_job)
    assert enqueued == [run.pk]
    assert page.evaluate("window.__sameDocument") is True
