"""Guided paths in the browser (#13): "Hand over" opens and focuses the handover form, the
message after creating focuses the team form's person picker, kill asks for a confirmation
(a dialog with JavaScript), and the jobs criterion leads an engineer to the job-create page
while the accountable PM asks them from there."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, expect

from initiatives.models import Initiative, Status
from notifications.models import Alert
from tests.browser.conftest import BROWSER_DB, login

pytestmark = [pytest.mark.browser, BROWSER_DB]


def test_hand_over_opens_the_form(
    page: Page, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    login(page, "pm", "pw")
    page.goto(f"/initiatives/{initiative.key}/")
    expect(page.locator("#handover details")).not_to_have_attribute("open", "")
    page.locator(".initiative-header").get_by_role("link", name="Hand over").click()
    expect(page).to_have_url(re.compile(rf"/initiatives/{initiative.key}/handover/#handover-to$"))
    expect(page.locator("#handover details")).to_have_attribute("open", "")
    expect(page.get_by_label("Hand over to")).to_be_focused()
    expect(page.get_by_label("Reason")).to_be_visible()


def test_the_message_after_creating_focuses_the_team_form(
    page: Page, pm: Any, engineer: Any, unit: Any
) -> None:
    login(page, "pm", "pw")
    page.goto("/initiatives/new/")
    page.get_by_label("Title").fill("Churn radar")
    page.get_by_label("Business unit").select_option(label="Fraud")
    page.get_by_role("button", name="Create initiative").click()
    page.locator("#messages").get_by_role("link", name="staff its team").click()
    picker = page.locator("#team-person")
    expect(picker).to_be_focused()
    expect(picker).to_be_in_viewport()


def test_kill_asks_for_a_confirmation(page: Page, pm: Any, initiative: Initiative) -> None:
    login(page, "pm", "pw")
    page.goto(f"/initiatives/{initiative.key}/")
    form = page.locator("#decision-form")
    form.locator("input[name=decision][value=kill]").check()
    form.get_by_label("Rationale").fill("No budget")

    questions: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    form.get_by_role("button", name="Record decision").click()
    assert questions and "final" in questions[0] and initiative.key in questions[0]
    # Dismissed: nothing was sent, the form is still there with what was typed.
    expect(form.get_by_label("Rationale")).to_have_value("No budget")
    expect(page.locator("#confirm-final")).not_to_be_checked()
    initiative.refresh_from_db()
    assert initiative.status == Status.ACTIVE

    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Record decision").click()
    expect(page.locator(".initiative-header .badge-cancelled")).to_have_text("Cancelled")
    initiative.refresh_from_db()
    assert initiative.status == Status.CANCELLED


def test_the_jobs_criterion_leads_to_the_job_create_page(
    page: Page, pm: Any, engineer: Any, dev_initiative: Initiative
) -> None:
    kpi = dev_initiative.kpis.get()
    login(page, "pm", "pw")
    page.goto(f"/initiatives/{dev_initiative.key}/")
    row = page.locator("#gate-panel li[data-code=kpi_jobs_trial_passed]")
    expect(row).to_contain_text("Who can do it: engineer")
    row.get_by_role("button", name="Ask engineer").click()
    expect(page.locator("#messages")).to_contain_text("Asked engineer")
    expect(page.locator("#history")).to_contain_text("Asked engineer")
    assert Alert.objects.get(kind="job_request").url == f"/ops/kpis/{kpi.pk}/job/"

    page.locator(".topnav").get_by_role("button", name="Log out").click()
    login(page, "engineer", "pw")
    page.goto(f"/initiatives/{dev_initiative.key}/")
    row = page.locator("#gate-panel li[data-code=kpi_jobs_trial_passed]")
    row.get_by_role("link", name="Register the job of “Fraud caught”").click()
    expect(page).to_have_url(re.compile(rf"/ops/kpis/{kpi.pk}/job/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Register the job of “Fraud caught”")
