"""The initiative page: what it shows, to whom, and in how many queries.
Who may do each action is tested in tests/test_page_permissions.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, TeamRole
from phases import services as phase_services
from phases.models import Criterion, Decision
from tests.factories import FULL_STORY, BusinessUnitFactory, decide, make_initiative, pass_biz_gate
from tests.helpers import NOT_FOUND, html, page_of, queries, section

pytestmark = pytest.mark.django_db


# The initiative page


def test_initiative_page_shows_story_team_gate_and_history(
    client: Any, stakeholder: Any, ready_initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    content = html(client.get(page_of(ready_initiative)))

    assert "<html" in content
    assert f"{ready_initiative.key} · Fraud" in content
    assert "<h1>Card-fraud detection</h1>" in content
    story = section(content, "story")
    for text in FULL_STORY.values():
        assert text in story
    team = section(content, "team")
    assert "accountable program manager" in team
    assert 'data-username="scientist"' in team
    assert 'data-username="engineer"' in team
    gate = section(content, "gate-panel")
    assert "Gate Biz → Dev" in gate
    assert "6 of 6 criteria met" in gate
    assert gate.count('class="criterion met"') == 6
    history = section(content, "history")
    assert "Initiative created in Biz" in history
    assert "scientist (data scientist) joined" in history
    assert "Ticked: Business sign-off by a stakeholder of the business unit" in history
    assert "Fraud caught" in section(content, "kpis")
    assert "Iterations start in Dev." in section(content, "iterations")


def test_initiative_page_history_shows_decisions_and_handovers(
    client: Any, pm: Any, other_pm: Any, dev_initiative: Initiative
) -> None:
    initiative_services.initiative_hand_over(
        initiative=dev_initiative, to=other_pm, reason="Parental leave", user=pm
    )
    client.force_login(pm)
    history = section(html(client.get(page_of(dev_initiative))), "history")
    assert "Go: entered Dev" in history
    assert "go for the test" in history
    assert "Accountability handed over from pm to pm2" in history
    assert "Parental leave" in history


@pytest.mark.parametrize(
    "key",
    ["BDO-999", "BDO-0", "BDO-007", "bdo-x", "nonsense", "BDO-1.5", "BDO-99999999999999999999999"],
)
def test_unknown_or_malformed_key_gives_the_friendly_404(
    client: Any, pm: Any, initiative: Initiative, key: str
) -> None:
    client.force_login(pm)
    content = html(client.get(f"/initiatives/{key}/"), 404)
    assert "<h1>Not found</h1>" in content
    assert NOT_FOUND in content


def test_key_is_case_insensitive(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    assert "Card-fraud detection" in html(client.get(f"/initiatives/bdo-{initiative.pk}/"))


def test_initiative_page_sends_anonymous_users_to_login(
    client: Any, initiative: Initiative
) -> None:
    response = client.get(page_of(initiative))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={page_of(initiative)}"


def _grow(
    initiative: Initiative, n: int, *, pm: Any, other_pm: Any, stakeholder: Any, make_user: Any
) -> None:
    """n iterations, n more team members, n ticks and about n decisions, via the services."""
    for i in range(n):
        initiative_services.iteration_add(
            initiative=initiative,
            user=pm,
            tried=f"Attempt {i}",
            business_feedback="Looks good." if i % 2 == 0 else "",
        )
    for i in range(n):
        member = make_user(Role.DEVOPS_ENGINEER, username=f"{initiative.key}-devops-{i}")
        initiative_services.member_add(
            initiative=initiative, member=member, role=TeamRole.DEVOPS_ENGINEER, user=pm
        )
    accepted = Criterion.objects.get(code="results_accepted")
    for i in range(n):
        if i:
            phase_services.criterion_untick(
                initiative=initiative, criterion=accepted, user=stakeholder, reason=f"Redo {i}"
            )
        phase_services.criterion_tick(
            initiative=initiative, criterion=accepted, user=stakeholder, note=f"Tick {i}"
        )
    for _ in range(n // 2):
        decide(initiative, Decision.HOLD, pm)
        decide(initiative, Decision.RESUME, pm)
    if n > 1:
        initiative_services.initiative_hand_over(
            initiative=initiative, to=other_pm, reason="Holiday", user=pm
        )
        initiative_services.initiative_hand_over(
            initiative=initiative, to=pm, reason="Back", user=other_pm
        )


@pytest.mark.parametrize("who", ["pm", "stakeholder", "engineer", "admin_user"])
def test_initiative_page_runs_a_constant_number_of_queries(
    client: Any,
    request: Any,
    who: str,
    pm: Any,
    other_pm: Any,
    stakeholder: Any,
    scientist: Any,
    engineer: Any,
    unit: BusinessUnit,
    make_user: Any,
) -> None:
    people = {"pm": pm, "other_pm": other_pm, "stakeholder": stakeholder, "make_user": make_user}
    built = []
    for n, title in ((1, "Few"), (10, "Many")):
        initiative = make_initiative(pm, unit, title=title)
        pass_biz_gate(
            initiative, pm=pm, stakeholder=stakeholder, scientist=scientist, engineer=engineer
        )
        initiative = decide(initiative, Decision.GO, pm)
        _grow(initiative, n, **people)
        built.append(initiative)
    few, many = built
    assert many.iterations.count() == 10
    assert many.memberships.count() == 12
    assert many.decisions.count() == 11
    assert few.decisions.count() == 1

    client.force_login(request.getfixturevalue(who))
    queries(client, page_of(few))  # warm up
    content = html(client.get(page_of(many)))
    assert "Attempt 9" in content
    assert f"{many.key}-devops-9" in content
    assert "Accountability handed over from pm2 to pm" in content
    assert queries(client, page_of(many)) == queries(client, page_of(few))


MANAGER_ONLY = {
    "decision form": 'id="decision-form"',
    "hand over": "Hand over",
    "handover url": "/handover/",
    # The initiative's Edit button (the team's engineers may edit KPIs: /kpis/<id>/edit/).
    "edit": 'class="btn" href="/initiatives/',
    "add to team": "Add to team",
    "remove from team": "/team/",
}


@pytest.mark.parametrize("who", ["stakeholder", "engineer", "scientist", "other_pm"])
def test_initiative_page_does_not_offer_what_a_user_may_not_do(
    client: Any, request: Any, who: str, ready_initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = html(client.get(page_of(ready_initiative)))
    for name, marker in MANAGER_ONLY.items():
        assert marker not in content, name
    assert "Record a decision" not in content


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_initiative_page_offers_the_manager_actions(
    client: Any, request: Any, who: str, ready_initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = html(client.get(page_of(ready_initiative)))
    for name, marker in MANAGER_ONLY.items():
        assert marker in content, name
    assert f'href="{page_of(ready_initiative, "edit/")}"' in content
    decision = re.search(r'<form[^>]*id="decision-form".*?</form>', content, re.S)
    assert decision is not None
    values = set(re.findall(r'name="decision" value="(\w+)"', decision.group(0)))
    assert values == {"go", "hold", "kill"}


def test_closed_initiative_page_offers_no_actions(client: Any, pm: Any, killed: Initiative) -> None:
    client.force_login(pm)
    content = html(client.get(page_of(killed)))
    for name, marker in MANAGER_ONLY.items():
        assert marker not in content, name
    assert "no further decision is possible" in content
    assert "Define a KPI" not in content


def _tick_action(initiative: Initiative, code: str) -> str:
    return f'action="{page_of(initiative, f"criteria/{code}/")}"'


def test_business_signoff_tick_form_only_for_the_units_stakeholder(
    client: Any, pm: Any, stakeholder: Any, make_user: Any, initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    content = html(client.get(page_of(initiative)))
    assert _tick_action(initiative, "business_signoff") in content
    assert _tick_action(initiative, "data_feasibility_confirmed") not in content

    client.force_login(pm)
    content = html(client.get(page_of(initiative)))
    assert _tick_action(initiative, "business_signoff") not in content
    assert _tick_action(initiative, "data_feasibility_confirmed") in content
    # Automatic criteria never get a tick form.
    assert _tick_action(initiative, "problem_and_requirements") not in content

    # A stakeholder of another unit does not even see this unit's initiatives.
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)
    client.force_login(outsider)
    assert client.get(page_of(initiative)).status_code == 404


def test_team_member_sees_the_team_tick_form(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(engineer)
    content = html(client.get(page_of(initiative)))
    assert _tick_action(initiative, "data_feasibility_confirmed") in content
    assert _tick_action(initiative, "business_signoff") not in content
