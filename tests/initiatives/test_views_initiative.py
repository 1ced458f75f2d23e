"""The initiative pages: create, edit, the initiative page, and its team, handover,
iteration and KPI actions, through the Django test client."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Handover, Initiative, Iteration, Membership, TeamRole
from kpis.models import KPI
from phases import services as phase_services
from phases.models import Criterion, Decision
from tests.factories import FULL_STORY, BusinessUnitFactory, decide, make_initiative, pass_biz_gate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
FORBIDDEN = "You may not do this"
NOT_FOUND = "There is no such page or initiative"


def _html(response: Any, status: int = 200) -> str:
    content = response.content.decode()
    assert response.status_code == status, content[:3000]
    return content


def _url(initiative: Initiative, tail: str = "") -> str:
    return f"/initiatives/{initiative.key}/{tail}"


def _section(content: str, dom_id: str) -> str:
    """The `<section id=...>` of the page with that id (sections do not nest here)."""
    match = re.search(rf'<section[^>]*\bid="{dom_id}"[^>]*>.*?</section>', content, re.S)
    assert match is not None, f"no section #{dom_id}"
    return match.group(0)


def _is_oob(content: str, dom_id: str) -> bool:
    return re.search(rf'<section[^>]*\bid="{dom_id}"[^>]*hx-swap-oob="true"', content) is not None


def _queries(client: Any, url: str, **extra: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **extra)
    assert response.status_code == 200
    return len(queries)


def _today() -> str:
    return timezone.localdate().isoformat()


def _form_data(unit: BusinessUnit, **overrides: Any) -> dict[str, Any]:
    data = {"title": "Churn forecast", "business_unit": unit.pk, "dev_timebox_weeks": 6}
    data.update(FULL_STORY)
    data.update(overrides)
    return data


@pytest.fixture
def killed(initiative: Initiative, pm: Any) -> Initiative:
    return decide(initiative, Decision.KILL, pm)


# Create


def test_create_form_for_a_program_manager(client: Any, pm: Any, unit: BusinessUnit) -> None:
    client.force_login(pm)
    content = _html(client.get("/initiatives/new/"))
    assert "<h1>New initiative</h1>" in content
    assert 'name="title"' in content
    assert 'name="business_problem"' in content
    assert f'<option value="{unit.pk}">Fraud</option>' in content
    assert 'name="accountable"' not in content  # a PM is accountable for what they create


def test_program_manager_creates_and_is_accountable(
    client: Any, pm: Any, other_pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    # Naming someone else is ignored for a PM: the field is not on their form.
    response = client.post("/initiatives/new/", _form_data(unit, accountable=other_pm.pk))

    initiative = Initiative.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _url(initiative)
    assert initiative.title == "Churn forecast"
    assert initiative.accountable == pm
    assert initiative.created_by == pm
    assert initiative.business_problem == FULL_STORY["business_problem"]
    assert initiative.phase == "biz"

    content = _html(client.get(response["Location"]))
    assert f"{initiative.key} created." in content


@pytest.mark.parametrize("who", ["stakeholder", "engineer", "scientist", "devops"])
def test_others_may_not_create(client: Any, request: Any, who: str, unit: BusinessUnit) -> None:
    client.force_login(request.getfixturevalue(who))
    assert FORBIDDEN in _html(client.get("/initiatives/new/"), 403)
    assert FORBIDDEN in _html(client.post("/initiatives/new/", _form_data(unit)), 403)
    assert not Initiative.objects.exists()


def test_create_sends_anonymous_users_to_login(client: Any, unit: BusinessUnit) -> None:
    response = client.post("/initiatives/new/", _form_data(unit))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Initiative.objects.exists()


def test_admin_names_another_program_manager(
    client: Any, admin_user: Any, pm: Any, other_pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(admin_user)
    content = _html(client.get("/initiatives/new/"))
    assert 'name="accountable"' in content
    assert f'<option value="{other_pm.pk}">pm2</option>' in content

    response = client.post("/initiatives/new/", _form_data(unit, accountable=other_pm.pk))
    initiative = Initiative.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _url(initiative)
    assert initiative.accountable == other_pm
    assert initiative.created_by == admin_user


def test_admin_without_the_pm_role_must_name_someone(
    client: Any, admin_user: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(admin_user)
    content = _html(client.post("/initiatives/new/", _form_data(unit, accountable="")), 400)
    assert "admin is not an active program manager" in content
    assert not Initiative.objects.exists()


def test_create_form_errors_are_inline_and_keep_the_input(
    client: Any, pm: Any, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    data = _form_data(
        unit,
        title="",
        dev_timebox_weeks=13,
        business_problem="Stock-outs on the shop floor cost sales every weekend.",
        use_case="Forecast demand per store and article.",
    )
    content = _html(client.post("/initiatives/new/", data), 400)

    assert "<html" in content
    assert "This field is required." in content
    assert "Ensure this value is less than or equal to 12." in content
    assert "Stock-outs on the shop floor cost sales every weekend." in content
    assert "Forecast demand per store and article." in content
    assert FULL_STORY["algorithm_translation"] in content
    assert 'name="dev_timebox_weeks" value="13"' in content
    assert f'<option value="{unit.pk}" selected>Fraud</option>' in content
    assert not Initiative.objects.exists()


def test_create_refuses_a_blank_title_of_spaces(client: Any, pm: Any, unit: BusinessUnit) -> None:
    client.force_login(pm)
    content = _html(client.post("/initiatives/new/", _form_data(unit, title="   ")), 400)
    assert "This field is required." in content
    assert not Initiative.objects.exists()


# Edit


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_and_admin_edit(
    client: Any, request: Any, who: str, initiative: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = _html(client.get(_url(initiative, "edit/")))
    assert f"Edit {initiative.key}" in content
    assert 'value="Card-fraud detection"' in content
    assert 'name="accountable"' not in content  # accountability changes by handover only

    marketing = BusinessUnitFactory(name="Marketing")
    data = _form_data(marketing, title="Card-fraud scoring", dev_timebox_weeks=4)
    response = client.post(_url(initiative, "edit/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(initiative)

    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud scoring"
    assert initiative.business_unit == marketing
    assert initiative.dev_timebox_weeks == 4
    assert initiative.use_case == FULL_STORY["use_case"]
    assert initiative.accountable.get_username() == "pm"

    content = _html(client.get(_url(initiative)))
    assert "Card-fraud scoring" in content
    assert f"{initiative.key} saved." in content


@pytest.mark.parametrize("who", ["other_pm", "stakeholder", "engineer", "scientist"])
def test_others_may_not_edit(
    client: Any, request: Any, who: str, initiative: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert FORBIDDEN in _html(client.get(_url(initiative, "edit/")), 403)
    response = client.post(_url(initiative, "edit/"), _form_data(unit, title="Hijacked"))
    assert FORBIDDEN in _html(response, 403)
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection"


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_closed_initiative_cannot_be_edited(
    client: Any, request: Any, who: str, killed: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert FORBIDDEN in _html(client.get(_url(killed, "edit/")), 403)
    assert FORBIDDEN in _html(client.post(_url(killed, "edit/"), _form_data(unit)), 403)
    killed.refresh_from_db()
    assert killed.business_problem == ""


def test_edit_form_error_keeps_the_input(
    client: Any, pm: Any, initiative: Initiative, unit: BusinessUnit
) -> None:
    client.force_login(pm)
    data = _form_data(unit, dev_timebox_weeks=0, business_problem="Typed, not saved.")
    content = _html(client.post(_url(initiative, "edit/"), data), 400)
    assert "Ensure this value is greater than or equal to 1." in content
    assert "Typed, not saved." in content
    initiative.refresh_from_db()
    assert initiative.business_problem == ""


def test_edit_of_an_unknown_initiative_is_not_found(client: Any, pm: Any) -> None:
    client.force_login(pm)
    assert NOT_FOUND in _html(client.get("/initiatives/BDO-999/edit/"), 404)


# The initiative page


def test_initiative_page_shows_story_team_gate_and_history(
    client: Any, stakeholder: Any, ready_initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    content = _html(client.get(_url(ready_initiative)))

    assert "<html" in content
    assert f"{ready_initiative.key} · Fraud" in content
    assert "<h1>Card-fraud detection</h1>" in content
    story = _section(content, "story")
    for text in FULL_STORY.values():
        assert text in story
    team = _section(content, "team")
    assert "accountable program manager" in team
    assert 'data-username="scientist"' in team
    assert 'data-username="engineer"' in team
    gate = _section(content, "gate-panel")
    assert "Gate Biz → Dev" in gate
    assert "6 of 6 criteria met" in gate
    assert gate.count('class="criterion met"') == 6
    history = _section(content, "history")
    assert "Initiative created in Biz" in history
    assert "scientist (data scientist) joined" in history
    assert "Ticked: Business sign-off by a stakeholder of the business unit" in history
    assert "Fraud caught" in _section(content, "kpis")
    assert "Iterations start in Dev." in _section(content, "iterations")


def test_initiative_page_history_shows_decisions_and_handovers(
    client: Any, pm: Any, other_pm: Any, dev_initiative: Initiative
) -> None:
    initiative_services.initiative_hand_over(
        initiative=dev_initiative, to=other_pm, reason="Parental leave", user=pm
    )
    client.force_login(pm)
    history = _section(_html(client.get(_url(dev_initiative))), "history")
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
    content = _html(client.get(f"/initiatives/{key}/"), 404)
    assert "<h1>Not found</h1>" in content
    assert NOT_FOUND in content


def test_key_is_case_insensitive(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    assert "Card-fraud detection" in _html(client.get(f"/initiatives/bdo-{initiative.pk}/"))


def test_initiative_page_sends_anonymous_users_to_login(
    client: Any, initiative: Initiative
) -> None:
    response = client.get(_url(initiative))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={_url(initiative)}"


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
    _queries(client, _url(few))  # warm up
    content = _html(client.get(_url(many)))
    assert "Attempt 9" in content
    assert f"{many.key}-devops-9" in content
    assert "Accountability handed over from pm2 to pm" in content
    assert _queries(client, _url(many)) == _queries(client, _url(few))


MANAGER_ONLY = {
    "decision form": 'id="decision-form"',
    "hand over": "Hand over",
    "handover url": "/handover/",
    "edit": "/edit/",
    "add to team": "Add to team",
    "remove from team": "/remove/",
}


@pytest.mark.parametrize("who", ["stakeholder", "engineer", "scientist", "other_pm"])
def test_initiative_page_does_not_offer_what_a_user_may_not_do(
    client: Any, request: Any, who: str, ready_initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = _html(client.get(_url(ready_initiative)))
    for name, marker in MANAGER_ONLY.items():
        assert marker not in content, name
    assert "Record a decision" not in content


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_initiative_page_offers_the_manager_actions(
    client: Any, request: Any, who: str, ready_initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = _html(client.get(_url(ready_initiative)))
    for name, marker in MANAGER_ONLY.items():
        assert marker in content, name
    assert f'href="{_url(ready_initiative, "edit/")}"' in content
    decision = re.search(r'<form[^>]*id="decision-form".*?</form>', content, re.S)
    assert decision is not None
    values = set(re.findall(r'name="decision" value="(\w+)"', decision.group(0)))
    assert values == {"go", "hold", "kill"}


def test_closed_initiative_page_offers_no_actions(client: Any, pm: Any, killed: Initiative) -> None:
    client.force_login(pm)
    content = _html(client.get(_url(killed)))
    for name, marker in MANAGER_ONLY.items():
        assert marker not in content, name
    assert "no further decision is possible" in content
    assert "Define a KPI" not in content


def _tick_action(initiative: Initiative, code: str) -> str:
    return f'action="{_url(initiative, f"criteria/{code}/")}"'


def test_business_signoff_tick_form_only_for_the_units_stakeholder(
    client: Any, pm: Any, stakeholder: Any, make_user: Any, initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    content = _html(client.get(_url(initiative)))
    assert _tick_action(initiative, "business_signoff") in content
    assert _tick_action(initiative, "data_feasibility_confirmed") not in content

    client.force_login(pm)
    content = _html(client.get(_url(initiative)))
    assert _tick_action(initiative, "business_signoff") not in content
    assert _tick_action(initiative, "data_feasibility_confirmed") in content
    # Automatic criteria never get a tick form.
    assert _tick_action(initiative, "problem_and_requirements") not in content

    # A stakeholder of another unit does not even see this unit's initiatives.
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)
    client.force_login(outsider)
    assert client.get(_url(initiative)).status_code == 404


def test_team_member_sees_the_team_tick_form(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(engineer)
    content = _html(client.get(_url(initiative)))
    assert _tick_action(initiative, "data_feasibility_confirmed") in content
    assert _tick_action(initiative, "business_signoff") not in content


# Team


def test_add_member_without_htmx_redirects(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    response = client.post(
        _url(initiative, "team/"), {"user": engineer.pk, "role": "data_engineer"}
    )
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#team"
    membership = Membership.objects.get(initiative=initiative)
    assert (membership.user, membership.role, membership.added_by) == (
        engineer,
        TeamRole.DATA_ENGINEER,
        pm,
    )

    content = _html(client.get(response["Location"]))
    assert 'data-username="engineer"' in _section(content, "team")
    assert "engineer joined as data engineer." in content


def test_add_member_with_htmx_returns_team_and_oob_updates(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    response = client.post(
        _url(initiative, "team/"), {"user": engineer.pk, "role": "data_engineer"}, **HTMX
    )
    content = _html(response)

    assert content.lstrip().startswith('<section class="card" id="team"')
    assert "<html" not in content
    assert 'data-username="engineer"' in _section(content, "team")
    assert not _is_oob(content, "team")
    assert _is_oob(content, "gate-panel")
    assert _is_oob(content, "history")
    assert "engineer (data engineer) joined" in _section(content, "history")
    assert "No data scientist on the team yet." in _section(content, "gate-panel")
    assert 'id="messages" aria-live="polite" hx-swap-oob="true"' in content
    assert "engineer joined as data engineer." in content
    for other in ("story", "iterations", "kpis"):
        assert f'id="{other}"' not in content


def test_add_member_in_the_wrong_role_shows_the_error(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"user": engineer.pk, "role": "data_scientist"}
    content = _html(client.post(_url(initiative, "team/"), data), 400)
    assert "<html" in content
    assert "engineer does not hold the role data scientist." in _section(content, "team")
    assert not Membership.objects.exists()

    content = _html(client.post(_url(initiative, "team/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="team"')
    assert "engineer does not hold the role data scientist." in content
    assert not Membership.objects.exists()


def test_add_member_form_error(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    content = _html(client.post(_url(initiative, "team/"), {"role": "nonsense"}), 400)
    assert "This field is required." in content
    assert "Select a valid choice." in content


def test_add_member_twice_is_a_conflict(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"user": engineer.pk, "role": "data_engineer"}
    client.post(_url(initiative, "team/"), data)
    content = _html(client.post(_url(initiative, "team/"), data), 409)
    assert "engineer is on the team as data engineer already." in content
    assert Membership.objects.count() == 1


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "engineer"])
def test_others_may_not_add_members(
    client: Any, request: Any, who: str, scientist: Any, initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    data = {"user": scientist.pk, "role": "data_scientist"}
    assert FORBIDDEN in _html(client.post(_url(initiative, "team/"), data), 403)
    assert not Membership.objects.exists()


def test_add_member_needs_post(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    assert client.get(_url(initiative, "team/")).status_code == 405


def test_remove_member_keeps_the_row(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    response = client.post(_url(initiative, f"team/{membership.pk}/remove/"))
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#team"

    membership.refresh_from_db()
    assert membership.left_at is not None
    assert membership.removed_by == pm
    content = _html(client.get(_url(initiative)))
    assert 'data-username="engineer"' not in _section(content, "team")
    assert "engineer (data engineer) left" in _section(content, "history")

    # Removing again: the membership is no longer active.
    assert client.post(_url(initiative, f"team/{membership.pk}/remove/")).status_code == 404


def test_remove_member_with_htmx(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    content = _html(client.post(_url(initiative, f"team/{membership.pk}/remove/"), **HTMX))
    assert content.lstrip().startswith('<section class="card" id="team"')
    assert 'data-username="engineer"' not in _section(content, "team")
    assert _is_oob(content, "gate-panel")
    assert _is_oob(content, "history")
    assert Membership.objects.filter(pk=membership.pk, left_at__isnull=False).exists()


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "engineer"])
def test_others_may_not_remove_members(
    client: Any, request: Any, who: str, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(request.getfixturevalue(who))
    response = client.post(_url(initiative, f"team/{membership.pk}/remove/"))
    assert FORBIDDEN in _html(response, 403)
    membership.refresh_from_db()
    assert membership.left_at is None


def test_remove_member_of_another_initiative_is_not_found(
    client: Any, pm: Any, engineer: Any, unit: BusinessUnit, initiative: Initiative
) -> None:
    other = make_initiative(pm, unit, title="Other")
    membership = initiative_services.member_add(
        initiative=other, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(pm)
    assert client.post(_url(initiative, f"team/{membership.pk}/remove/")).status_code == 404


def test_remove_member_of_a_closed_initiative_is_refused_not_a_crash(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    membership = initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    decide(initiative, Decision.KILL, pm)
    client.force_login(pm)
    client.raise_request_exception = False
    response = client.post(_url(initiative, f"team/{membership.pk}/remove/"))
    # The service refuses (closed initiative); every other action turns that refusal into
    # a 409 page, not a server error.
    assert response.status_code == 409
    assert (
        f"{initiative.key} is cancelled; it can no longer be changed." in response.content.decode()
    )
    membership.refresh_from_db()
    assert membership.left_at is None


# Handover


def test_handover_form(client: Any, pm: Any, other_pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    content = _html(client.get(_url(initiative, "handover/")))
    assert "<html" in content
    handover = _section(content, "handover")
    assert f'action="{_url(initiative, "handover/")}"' in handover
    assert 'name="reason"' in handover
    assert f'<option value="{other_pm.pk}">pm2</option>' in handover
    assert f'<option value="{pm.pk}">' not in handover  # not to oneself


def test_handover_form_with_htmx_is_the_partial(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    content = _html(client.get(_url(initiative, "handover/"), **HTMX))
    assert content.lstrip().startswith('<section class="card" id="handover"')
    assert "<html" not in content
    assert 'name="reason"' in content


def test_hand_over_without_htmx(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Moving to the Risk programme"}
    response = client.post(_url(initiative, "handover/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#team"

    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    handover = Handover.objects.get()
    assert (handover.from_user, handover.to_user, handover.handed_over_by) == (pm, other_pm, pm)
    assert handover.reason == "Moving to the Risk programme"
    content = _html(client.get(response["Location"]))
    assert f"pm2 is now accountable for {initiative.key}." in content
    assert "Moving to the Risk programme" in _section(content, "history")
    # The former owner no longer manages it.
    assert 'id="decision-form"' not in content


def test_hand_over_with_htmx_reloads_the_page(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Rebalancing"}
    response = client.post(_url(initiative, "handover/"), data, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == _url(initiative)
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm


def test_admin_hands_over(
    client: Any, admin_user: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(admin_user)
    response = client.post(_url(initiative, "handover/"), {"to": other_pm.pk, "reason": "Re-org"})
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    assert Handover.objects.get().handed_over_by == admin_user


def test_hand_over_needs_a_reason(
    client: Any, pm: Any, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "  "}
    content = _html(client.post(_url(initiative, "handover/"), data), 400)
    assert "This field is required." in _section(content, "handover")
    assert "<details open>" in _section(content, "handover")

    content = _html(client.post(_url(initiative, "handover/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="handover"')
    assert "This field is required." in content
    initiative.refresh_from_db()
    assert initiative.accountable == pm
    assert not Handover.objects.exists()


def test_hand_over_to_a_non_pm_is_refused(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": engineer.pk, "reason": "Why not"}
    content = _html(client.post(_url(initiative, "handover/"), data), 400)
    assert "Select a valid choice." in content
    assert not Handover.objects.exists()


@pytest.mark.parametrize("who", ["other_pm", "stakeholder", "engineer"])
def test_others_may_not_hand_over(
    client: Any, request: Any, who: str, other_pm: Any, initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert FORBIDDEN in _html(client.get(_url(initiative, "handover/")), 403)
    data = {"to": other_pm.pk, "reason": "Taking over"}
    assert FORBIDDEN in _html(client.post(_url(initiative, "handover/"), data), 403)
    initiative.refresh_from_db()
    assert initiative.accountable.get_username() == "pm"


def test_closed_initiative_cannot_be_handed_over(
    client: Any, pm: Any, other_pm: Any, killed: Initiative
) -> None:
    client.force_login(pm)
    data = {"to": other_pm.pk, "reason": "Too late"}
    assert FORBIDDEN in _html(client.post(_url(killed, "handover/"), data), 403)
    assert not Handover.objects.exists()


# Iterations


def test_add_iteration_in_dev(client: Any, pm: Any, dev_initiative: Initiative) -> None:
    client.force_login(pm)
    data = {
        "tried": "Logistic regression baseline",
        "happened_on": _today(),
        "business_feedback": "",
    }
    response = client.post(_url(dev_initiative, "iterations/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(dev_initiative) + "#iterations"

    iteration = Iteration.objects.get()
    assert (iteration.number, iteration.tried, iteration.recorded_by) == (
        1,
        "Logistic regression baseline",
        pm,
    )
    content = _html(client.get(response["Location"]))
    assert "Iteration 1 recorded." in content
    assert "Logistic regression baseline" in _section(content, "iterations")


def test_add_iteration_with_htmx(client: Any, scientist: Any, dev_initiative: Initiative) -> None:
    client.force_login(scientist)  # a team member records iterations too
    data = {
        "tried": "Gradient boosting",
        "happened_on": _today(),
        "business_feedback": "Promising.",
    }
    content = _html(client.post(_url(dev_initiative, "iterations/"), data, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "<html" not in content
    assert "Gradient boosting" in _section(content, "iterations")
    assert _is_oob(content, "gate-panel")
    assert _is_oob(content, "history")
    assert Iteration.objects.get().business_feedback == "Promising."


def test_add_iteration_in_biz_is_a_conflict_with_the_message(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"tried": "Too early", "happened_on": _today()}
    content = _html(client.post(_url(initiative, "iterations/"), data), 409)
    assert "Iterations are recorded in Dev." in content

    content = _html(client.post(_url(initiative, "iterations/"), data, **HTMX), 409)
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "Iterations are recorded in Dev." in content
    assert not Iteration.objects.exists()


def test_add_iteration_needs_what_was_tried(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    content = _html(
        client.post(_url(dev_initiative, "iterations/"), {"tried": "", "happened_on": _today()}),
        400,
    )
    assert "This field is required." in _section(content, "iterations")
    assert not Iteration.objects.exists()


def test_add_iteration_in_the_future_is_refused(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    data = {"tried": "Time travel", "happened_on": tomorrow}
    content = _html(client.post(_url(dev_initiative, "iterations/"), data), 400)
    assert "An iteration cannot happen in the future." in _section(content, "iterations")
    assert "Time travel" in content
    assert not Iteration.objects.exists()


@pytest.mark.parametrize("who", ["stakeholder", "other_pm"])
def test_others_may_not_add_iterations(
    client: Any, request: Any, who: str, dev_initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    data = {"tried": "Sneaky", "happened_on": _today()}
    response = client.post(_url(dev_initiative, "iterations/"), data)
    assert FORBIDDEN in _html(response, 403)
    assert not Iteration.objects.exists()


def test_unit_stakeholder_gives_feedback(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    client.force_login(stakeholder)
    content = _html(client.get(_url(dev_initiative)))
    assert f'action="{_url(dev_initiative, "iterations/1/feedback/")}"' in content

    data = {"business_feedback": "Too many false alarms."}
    response = client.post(_url(dev_initiative, "iterations/1/feedback/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(dev_initiative) + "#iterations"
    iteration = Iteration.objects.get()
    assert iteration.business_feedback == "Too many false alarms."
    assert iteration.feedback_at is not None

    content = _html(client.get(response["Location"]))
    assert "Feedback on iteration 1 recorded." in content
    assert "Too many false alarms." in _section(content, "iterations")


def test_feedback_with_htmx_and_errors(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    client.force_login(stakeholder)
    url = _url(dev_initiative, "iterations/1/feedback/")

    content = _html(client.post(url, {"business_feedback": ""}, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert "This field is required." in content

    content = _html(client.post(url, {"business_feedback": "Fine."}, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="iterations"')
    assert _is_oob(content, "gate-panel")
    assert "Fine." in content
    assert client.post(_url(dev_initiative, "iterations/9/feedback/"), {}).status_code == 404


def test_feedback_after_a_recycle_to_biz_is_a_conflict_with_the_message(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    decide(dev_initiative, Decision.RECYCLE, pm)
    client.force_login(stakeholder)
    url = _url(dev_initiative, "iterations/1/feedback/")
    content = _html(client.post(url, {"business_feedback": "Late answer."}), 409)
    assert "Business feedback on iterations is given in Dev." in content
    assert Iteration.objects.get().business_feedback == ""


@pytest.mark.parametrize(
    ("tail", "data"),
    [
        ("team/", {"user": "devops", "role": "devops_engineer"}),
        ("kpis/", {"name": "Late KPI", "direction": "higher", "target": "1"}),
        ("iterations/", {"tried": "Late attempt"}),
        ("iterations/1/feedback/", {"business_feedback": "Late answer."}),
    ],
)
def test_closed_initiative_refuses_page_actions(
    client: Any,
    pm: Any,
    devops: Any,
    dev_initiative: Initiative,
    tail: str,
    data: dict[str, str],
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    decide(dev_initiative, Decision.KILL, pm)
    data = {**data, "happened_on": _today()}
    if data.get("user") == "devops":
        data["user"] = str(devops.pk)
    client.force_login(pm)
    content = _html(client.post(_url(dev_initiative, tail), data), 409)
    assert f"{dev_initiative.key} is cancelled" in content
    assert not Membership.objects.filter(user=devops).exists()
    assert not KPI.objects.filter(name="Late KPI").exists()
    assert Iteration.objects.get().business_feedback == ""


@pytest.mark.parametrize("who", ["other_pm", "engineer"])
def test_others_may_not_give_feedback(
    client: Any, request: Any, who: str, pm: Any, dev_initiative: Initiative
) -> None:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    client.force_login(request.getfixturevalue(who))
    url = _url(dev_initiative, "iterations/1/feedback/")
    assert FORBIDDEN in _html(client.post(url, {"business_feedback": "Great!"}), 403)
    assert Iteration.objects.get().business_feedback == ""


# KPIs


def test_pm_defines_a_kpi(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {
        "name": "Fraud caught",
        "unit": "%",
        "direction": "higher",
        "target": "90",
        "warning_threshold": "80",
        "critical_threshold": "70",
        "description": "Share of fraud flagged",
    }
    response = client.post(_url(initiative, "kpis/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#kpis"
    kpi = KPI.objects.get()
    assert (kpi.name, kpi.target, kpi.warning_threshold, kpi.critical_threshold) == (
        "Fraud caught",
        90,
        80,
        70,
    )
    content = _html(client.get(response["Location"]))
    assert "Fraud caught" in _section(content, "kpis")


def test_define_kpi_with_htmx(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {"name": "Fraud caught", "direction": "higher", "target": "90"}
    content = _html(client.post(_url(initiative, "kpis/"), data, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="kpis"')
    assert "<html" not in content
    assert "Fraud caught" in _section(content, "kpis")
    gate = _section(content, "gate-panel")
    assert _is_oob(content, "gate-panel")
    assert re.search(r'class="criterion met" data-code="success_kpi_with_target"', gate)


@pytest.mark.parametrize(
    ("direction", "target", "warning", "critical"),
    [("higher", "90", "95", "70"), ("lower", "5", "3", "10"), ("higher", "90", "60", "70")],
)
def test_bad_thresholds_show_the_error(
    client: Any,
    pm: Any,
    initiative: Initiative,
    direction: str,
    target: str,
    warning: str,
    critical: str,
) -> None:
    client.force_login(pm)
    data = {
        "name": "Fraud caught",
        "direction": direction,
        "target": target,
        "warning_threshold": warning,
        "critical_threshold": critical,
    }
    content = _html(client.post(_url(initiative, "kpis/"), data), 400)
    kpis = _section(content, "kpis")
    assert "thresholds must satisfy" in kpis
    assert "<details open>" in kpis
    assert 'value="Fraud caught"' in kpis
    assert not KPI.objects.exists()

    content = _html(client.post(_url(initiative, "kpis/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="kpis"')
    assert "thresholds must satisfy" in content


def test_kpi_form_errors(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {"name": "", "direction": "sideways", "target": "a lot"}
    content = _html(client.post(_url(initiative, "kpis/"), data), 400)
    kpis = _section(content, "kpis")
    assert "This field is required." in kpis
    assert "Enter a number." in kpis
    assert "Select a valid choice." in kpis


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "scientist"])
def test_others_may_not_define_kpis(
    client: Any, request: Any, who: str, initiative: Initiative
) -> None:
    client.force_login(request.getfixturevalue(who))
    data = {"name": "Fraud caught", "direction": "higher", "target": "90"}
    assert FORBIDDEN in _html(client.post(_url(initiative, "kpis/"), data), 403)
    assert not KPI.objects.exists()
