"""The Biz → Dev gate through the browser: a program manager writes the story, staffs the team,
defines a KPI and ticks data feasibility; the business stakeholder signs off; the program
manager decides `go` and the card moves to the Dev column of the board."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from initiatives.models import Initiative, Phase
from phases.models import GateDecision
from tests.browser.conftest import BROWSER_DB, login, logout
from tests.factories import make_initiative

pytestmark = [pytest.mark.browser, BROWSER_DB]

STORY = {
    "business_problem": "Card fraud costs 2 M EUR a year.",
    "business_requirements": "Flag fraud within 200 ms with few false alarms.",
    "use_case": "Score every card transaction before authorisation.",
    "algorithm_translation": "Binary classification on transaction features.",
}


def _criterion(page: Page, code: str) -> Any:
    return page.locator(f"#gate-panel li[data-code={code}]")


def _add_member(page: Page, username: str, role: str) -> None:
    form = page.locator("#team form.member-form")
    form.get_by_label("Person").select_option(label=username)
    form.get_by_label("Role").select_option(label=role)
    form.get_by_role("button", name="Add to team").click()
    expect(page.locator(f"#team li[data-username={username}]")).to_contain_text(role.lower())


def _decide(page: Page, decision: str, rationale: str) -> None:
    form = page.locator("#decision-form")
    form.locator(f"input[name=decision][value={decision}]").check()
    form.get_by_label("Rationale").fill(rationale)
    form.get_by_role("button", name="Record decision").click()


def test_biz_to_dev_gate_through_the_browser(
    page: Page, pm: Any, stakeholder: Any, scientist: Any, engineer: Any, unit: Any
) -> None:
    login(page, "pm", "pw")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="New initiative").click()
    expect(page.get_by_role("heading", name="New initiative")).to_be_visible()
    page.get_by_label("Title").fill("Card-fraud scoring")
    page.get_by_label("Business unit").select_option(label="Fraud")
    for name, text in STORY.items():
        page.locator(f"#id_{name}").fill(text)
    page.get_by_role("button", name="Create initiative").click()

    expect(page).to_have_url(re.compile(r"/initiatives/BDO-\d+/$"))
    key = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text("Card-fraud scoring")
    expect(page.locator("#story")).to_contain_text(STORY["algorithm_translation"])
    for code in ("problem_and_requirements", "use_case_and_algorithm"):
        expect(_criterion(page, code)).to_have_class(re.compile(r"\bmet\b"))

    _add_member(page, "engineer", "Data engineer")
    _add_member(page, "scientist", "Data scientist")
    # The team form updates the gate panel out of band.
    expect(_criterion(page, "team_has_engineer_and_scientist")).to_have_class(
        re.compile(r"\bmet\b")
    )

    kpis = page.locator("#kpis")
    kpis.get_by_text("Define a KPI").click()
    kpis.get_by_label("Name").fill("Fraud caught")
    kpis.locator("input[name=unit]").fill("%")
    kpis.get_by_label("Target").fill("90")
    kpis.get_by_role("button", name="Define KPI").click()
    expect(page.locator("#kpis tbody tr")).to_contain_text("Fraud caught")
    expect(_criterion(page, "success_kpi_with_target")).to_have_class(re.compile(r"\bmet\b"))

    feasibility = _criterion(page, "data_feasibility_confirmed")
    feasibility.get_by_role("button", name="Tick").click()
    expect(feasibility).to_have_class(re.compile(r"\bmet\b"))
    expect(feasibility).to_contain_text("Ticked by pm")

    # Only the business sign-off is missing: `go` is refused and names exactly that.
    _decide(page, "go", "Trying before the business signed off.")
    refusal = page.locator("#decision-form .errorlist")
    expect(refusal).to_contain_text("Go refused")
    expect(refusal.locator("li[data-code]")).to_have_count(1)
    expect(refusal.locator("li[data-code=business_signoff]")).to_be_visible()
    expect(page.locator(".phase-steps li.current")).to_have_text("Biz")

    logout(page)
    login(page, "stakeholder", "pw")
    page.goto(f"/initiatives/{key}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Card-fraud scoring")
    expect(page.locator("#gate-panel")).to_be_visible()
    expect(page.locator("#decision-form")).to_have_count(0)
    signoff = _criterion(page, "business_signoff")
    signoff.get_by_role("button", name="Tick").click()
    expect(signoff).to_have_class(re.compile(r"\bmet\b"))
    expect(signoff).to_contain_text("Ticked by stakeholder")

    logout(page)
    login(page, "pm", "pw")
    page.goto(f"/initiatives/{key}/")
    expect(page.locator("#gate-panel li.criterion")).to_have_count(6)
    expect(page.locator("#gate-panel li.criterion.unmet")).to_have_count(0)
    expect(page.locator("#gate-panel .gate-progress")).to_have_text("6 of 6 criteria met")

    page.evaluate("window.__beforeDecision = true")
    _decide(page, "go", "Business aligned, data available.")
    # A decision reloads the whole page (HX-Redirect): the marker set above is gone.
    expect(page.locator(".phase-steps li.current")).to_have_text("Dev")
    assert page.evaluate("window.__beforeDecision") is None
    expect(page.locator(".initiative-header .badge-dev")).to_have_text("Dev")
    expect(page.locator("#gate-panel h2")).to_contain_text("Dev → Ops")
    expect(page.locator("#history")).to_contain_text("entered Dev")

    initiative = Initiative.objects.get(title="Card-fraud scoring")
    assert initiative.key == key
    assert initiative.phase == Phase.DEV
    assert GateDecision.objects.filter(initiative=initiative, decision="go").count() == 1

    page.goto("/board/")
    card = page.locator(f"article[data-key={key}]")
    expect(card).to_have_count(1)
    expect(page.locator(f"section[data-phase=dev] article[data-key={key}]")).to_be_visible()
    expect(page.locator(f"section[data-phase=biz] article[data-key={key}]")).to_have_count(0)


def test_refused_go_lists_unmet_criteria_without_reload(page: Page, pm: Any, unit: Any) -> None:
    initiative = make_initiative(pm, unit, title="Churn early warning")
    login(page, "pm", "pw")
    page.goto(f"/initiatives/{initiative.key}/")
    unmet = page.locator("#gate-panel li.criterion.unmet")
    expect(unmet).to_have_count(6)
    unmet_codes = sorted(unmet.evaluate_all("items => items.map(li => li.dataset.code)"))

    page.evaluate("window.__noReload = true")
    with page.expect_response(re.compile(r"/decisions/$")) as response:
        _decide(page, "go", "Let's start building.")
    assert response.value.status == 409

    refusal = page.locator("#decision-form .errorlist[role=alert]")
    expect(refusal).to_contain_text("Go refused. These criteria are not met:")
    listed = refusal.locator("li[data-code]")
    expect(listed).to_have_count(len(unmet_codes))
    assert sorted(listed.evaluate_all("items => items.map(li => li.dataset.code)")) == unmet_codes
    expect(refusal.locator("li[data-code=business_signoff]")).to_contain_text(
        "Business sign-off by a stakeholder of the business unit"
    )
    # htmx swapped the gate panel in place: same document, same URL, form keeps the input.
    assert page.evaluate("window.__noReload") is True
    expect(page).to_have_url(re.compile(rf"/initiatives/{initiative.key}/$"))
    expect(page.locator("#decision-form input[value=go]")).to_be_checked()
    expect(page.locator("#decision-form").get_by_label("Rationale")).to_have_value(
        "Let's start building."
    )
    expect(page.locator(".phase-steps li.current")).to_have_text("Biz")

    initiative.refresh_from_db()
    assert initiative.phase == Phase.BIZ
    assert not GateDecision.objects.filter(initiative=initiative).exists()
