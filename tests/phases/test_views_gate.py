"""The gate panel actions on the initiative page: tick / untick a criterion and record a
decision, through the Django test client."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative, Phase, Status, TeamRole
from phases.models import Criterion, Decision, GateDecision, Tick
from tests.factories import FULL_STORY, BusinessUnitFactory, decide
from tests.helpers import FORBIDDEN, HTMX, html, is_oob, section

pytestmark = pytest.mark.django_db

GATE_PANEL = '<section class="card gate-panel" id="gate-panel"'
BIZ_TO_DEV = [
    "problem_and_requirements",
    "use_case_and_algorithm",
    "data_feasibility_confirmed",
    "success_kpi_with_target",
    "team_has_engineer_and_scientist",
    "business_signoff",
]


def _url(initiative: Initiative, tail: str = "") -> str:
    return f"/initiatives/{initiative.key}/{tail}"


def _tick_url(initiative: Initiative, code: str) -> str:
    return _url(initiative, f"criteria/{code}/")


def _refusal(content: str) -> str:
    """The error block of the decision form."""
    match = re.search(r'<div class="errorlist nonfield" role="alert">(.*?)</div>', content, re.S)
    assert match is not None, "no refusal shown on the decision form"
    return match.group(1)


def _live_ticks(initiative: Initiative, code: str) -> int:
    return Tick.objects.filter(
        initiative=initiative, criterion__code=code, revoked_at__isnull=True
    ).count()


def _board_column_of(content: str, key: str) -> str | None:
    for match in re.finditer(
        r'<section class="column[^"]*"[^>]*data-phase="(\w+)">(.*?)</section>', content, re.S
    ):
        if f'data-key="{key}"' in match.group(2):
            return match.group(1)
    return None


@pytest.fixture
def half_ready(initiative: Initiative, pm: Any, scientist: Any, engineer: Any) -> Initiative:
    """Story written and team staffed; no KPI, no feasibility tick, no sign-off."""
    initiative = initiative_services.initiative_update(initiative=initiative, user=pm, **FULL_STORY)
    for member, role in ((scientist, TeamRole.DATA_SCIENTIST), (engineer, TeamRole.DATA_ENGINEER)):
        initiative_services.member_add(initiative=initiative, member=member, role=role, user=pm)
    return initiative


# Ticks


def test_stakeholder_signs_off_without_htmx(
    client: Any, stakeholder: Any, initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    data = {
        "note": "Agreed in the steering committee",
        "evidence_url": "https://wiki.example.com/minutes",
    }
    response = client.post(_tick_url(initiative, "business_signoff"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#gate-panel"

    tick = Tick.objects.get()
    assert tick.criterion.code == "business_signoff"
    assert tick.ticked_by == stakeholder
    assert tick.note == "Agreed in the steering committee"
    assert tick.evidence_url == "https://wiki.example.com/minutes"

    content = html(client.get(response["Location"]))
    assert "Ticked: Business sign-off by a stakeholder of the business unit." in content
    gate = section(content, "gate-panel")
    assert 'class="criterion met" data-code="business_signoff"' in gate
    assert "Ticked by stakeholder" in gate
    assert 'href="https://wiki.example.com/minutes"' in gate


def test_pm_ticks_with_htmx_and_gets_the_gate_panel_and_history(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    response = client.post(
        _tick_url(initiative, "data_feasibility_confirmed"), {"note": "Warehouse has it"}, **HTMX
    )
    content = html(response)

    assert content.lstrip().startswith(GATE_PANEL)
    assert "<html" not in content
    assert not is_oob(content, "gate-panel")
    assert is_oob(content, "history")
    assert 'class="criterion met" data-code="data_feasibility_confirmed"' in content
    assert "1 of 6 criteria met" in content
    assert "Ticked: Data feasibility confirmed" in section(content, "history")
    for other in ("team", "iterations", "kpis", "story"):
        assert f'id="{other}"' not in content
    assert _live_ticks(initiative, "data_feasibility_confirmed") == 1


def test_team_member_ticks_feasibility(
    client: Any, pm: Any, engineer: Any, initiative: Initiative
) -> None:
    initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    client.force_login(engineer)
    response = client.post(_tick_url(initiative, "data_feasibility_confirmed"), {})
    assert response.status_code == 302
    assert Tick.objects.get().ticked_by == engineer


def test_ticking_twice_keeps_one_tick(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    for _ in range(2):
        assert client.post(_tick_url(initiative, "data_feasibility_confirmed")).status_code == 302
    assert Tick.objects.count() == 1


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("pm", "business_signoff"),  # the business's word, not the PM's
        ("admin_user", "business_signoff"),
        ("other_pm", "business_signoff"),
        ("stakeholder", "data_feasibility_confirmed"),  # not on the team
        ("other_pm", "data_feasibility_confirmed"),
        ("engineer", "data_feasibility_confirmed"),  # not on the team
    ],
)
def test_user_not_allowed_to_tick_gets_403(
    client: Any, request: Any, make_user: Any, initiative: Initiative, who: str, code: str
) -> None:
    if who == "outsider":
        user = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
        BusinessUnitFactory(name="Marketing").stakeholders.add(user)
    else:
        user = request.getfixturevalue(who)
    client.force_login(user)
    assert FORBIDDEN in html(client.post(_tick_url(initiative, code), {"note": "x"}), 403)
    assert FORBIDDEN in html(client.post(_tick_url(initiative, code), {}, **HTMX), 403)
    assert not Tick.objects.exists()


def test_a_stakeholder_of_another_unit_cannot_tick_nor_see_it(
    client: Any, make_user: Any, initiative: Initiative
) -> None:
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)
    client.force_login(outsider)
    # 404, not 403: the initiative of another unit is not revealed.
    assert client.post(_tick_url(initiative, "business_signoff"), {"note": "x"}).status_code == 404
    assert not Tick.objects.exists()


def test_untick(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    client.post(_tick_url(initiative, "data_feasibility_confirmed"))
    content = html(client.get(_url(initiative)))
    assert "Untick" in section(content, "gate-panel")

    response = client.post(
        _tick_url(initiative, "data_feasibility_confirmed"),
        {"action": "untick", "note": "Data turned out to be sampled"},
    )
    assert response.status_code == 302
    assert response["Location"] == _url(initiative) + "#gate-panel"

    tick = Tick.objects.get()  # kept for the history
    assert tick.revoked_at is not None
    assert tick.revoked_by == pm
    assert tick.revoke_reason == "Data turned out to be sampled"
    content = html(client.get(response["Location"]))
    assert "Unticked: Data feasibility confirmed." in content
    assert 'class="criterion unmet" data-code="data_feasibility_confirmed"' in content
    assert "Data turned out to be sampled" in section(content, "history")


def test_untick_with_htmx(client: Any, stakeholder: Any, initiative: Initiative) -> None:
    client.force_login(stakeholder)
    client.post(_tick_url(initiative, "business_signoff"))
    content = html(
        client.post(_tick_url(initiative, "business_signoff"), {"action": "untick"}, **HTMX)
    )
    assert content.lstrip().startswith(GATE_PANEL)
    assert is_oob(content, "history")
    assert 'class="criterion unmet" data-code="business_signoff"' in content
    assert "Unticked: Business sign-off" in section(content, "history")
    assert _live_ticks(initiative, "business_signoff") == 0


def test_untick_of_an_unticked_criterion_is_harmless(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    url = _tick_url(initiative, "data_feasibility_confirmed")
    assert client.post(url, {"action": "untick"}).status_code == 302
    assert not Tick.objects.exists()


def test_untick_by_user_not_allowed_gets_403(
    client: Any, pm: Any, stakeholder: Any, initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    client.post(_tick_url(initiative, "business_signoff"))
    client.force_login(pm)
    response = client.post(_tick_url(initiative, "business_signoff"), {"action": "untick"})
    assert FORBIDDEN in html(response, 403)
    assert _live_ticks(initiative, "business_signoff") == 1


@pytest.mark.parametrize("code", ["problem_and_requirements", "success_kpi_with_target"])
def test_automatic_criterion_cannot_be_ticked(
    client: Any, pm: Any, initiative: Initiative, code: str
) -> None:
    client.force_login(pm)
    content = html(client.post(_tick_url(initiative, code), {}), 400)
    assert "is computed from data and cannot be ticked by hand." in content

    content = html(client.post(_tick_url(initiative, code), {}, **HTMX), 400)
    assert content.lstrip().startswith(GATE_PANEL)
    assert "is computed from data and cannot be ticked by hand." in content
    assert not Tick.objects.exists()


def test_criterion_of_another_gate_is_a_conflict(
    client: Any, stakeholder: Any, initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    content = html(client.post(_tick_url(initiative, "results_accepted"), {}), 409)
    assert "is not a criterion of" in content
    assert not Tick.objects.exists()


def test_tick_bad_evidence_link(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    url = _tick_url(initiative, "data_feasibility_confirmed")
    content = html(client.post(url, {"evidence_url": "not a url at all"}, **HTMX), 400)
    assert content.lstrip().startswith(GATE_PANEL)
    assert "Enter a valid URL." in content
    assert not Tick.objects.exists()


def test_unknown_criterion_is_not_found(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    assert client.post(_tick_url(initiative, "no_such_criterion"), {}).status_code == 404
    assert client.post("/initiatives/BDO-999/criteria/business_signoff/", {}).status_code == 404


def test_tick_needs_post_and_login(client: Any, pm: Any, initiative: Initiative) -> None:
    response = client.post(_tick_url(initiative, "data_feasibility_confirmed"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    client.force_login(pm)
    assert client.get(_tick_url(initiative, "data_feasibility_confirmed")).status_code == 405
    assert not Tick.objects.exists()


# Decisions


def test_refused_go_lists_every_unmet_criterion_and_keeps_the_rationale(
    client: Any, pm: Any, half_ready: Initiative
) -> None:
    client.force_login(pm)
    rationale = "The business wants it before Q3 & the data is there."
    data = {"decision": "go", "rationale": rationale}
    content = html(client.post(_url(half_ready, "decisions/"), data), 409)

    assert "<html" in content
    refusal = _refusal(content)
    assert "Go refused." in refusal
    unmet = {
        "data_feasibility_confirmed": "Data feasibility confirmed",
        "success_kpi_with_target": "At least one success KPI with a target",
        "business_signoff": "Business sign-off by a stakeholder of the business unit",
    }
    assert set(re.findall(r'data-code="([\w-]+)"', refusal)) == set(unmet)
    for title in unmet.values():
        assert title in refusal
    assert "Business problem and requirements written" not in refusal
    decision_form = section(content, "gate-panel")
    assert "The business wants it before Q3 &amp; the data is there." in decision_form
    assert 'value="go" required checked' in decision_form

    half_ready.refresh_from_db()
    assert (half_ready.phase, half_ready.status) == (Phase.BIZ, Status.ACTIVE)
    assert not GateDecision.objects.exists()


def test_refused_go_on_a_bare_initiative_names_all_six(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"decision": "go", "rationale": "Let us try"}
    content = html(client.post(_url(initiative, "decisions/"), data, **HTMX), 409)

    assert content.lstrip().startswith(GATE_PANEL)
    assert "<html" not in content
    refusal = _refusal(content)
    assert re.findall(r'data-code="([\w-]+)"', refusal) == BIZ_TO_DEV
    for criterion in Criterion.objects.filter(code__in=BIZ_TO_DEV):
        assert criterion.title in refusal
    assert "Let us try" in content
    assert not GateDecision.objects.exists()


def test_met_go_moves_to_dev_and_the_board_shows_it(
    client: Any, pm: Any, ready_initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"decision": "go", "rationale": "Every criterion holds"}
    response = client.post(_url(ready_initiative, "decisions/"), data)
    assert response.status_code == 302
    assert response["Location"] == _url(ready_initiative) + "#gate-panel"

    ready_initiative.refresh_from_db()
    assert (ready_initiative.phase, ready_initiative.status) == (Phase.DEV, Status.ACTIVE)
    record = GateDecision.objects.get()
    assert (record.decision, record.decided_by, record.rationale) == (
        "go",
        pm,
        "Every criterion holds",
    )
    assert len(record.checklist) == 6

    content = html(client.get(response["Location"]))
    assert f"{ready_initiative.key} is now Dev / active." in content
    assert "Gate Dev → Ops" in section(content, "gate-panel")
    assert "Go: entered Dev" in section(content, "history")

    board = html(client.get("/board/"))
    assert _board_column_of(board, ready_initiative.key) == "dev"


def test_met_go_with_htmx_reloads_the_page(
    client: Any, pm: Any, ready_initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"decision": "go", "rationale": "Every criterion holds"}
    response = client.post(_url(ready_initiative, "decisions/"), data, **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == _url(ready_initiative)
    ready_initiative.refresh_from_db()
    assert ready_initiative.phase == Phase.DEV
    board = html(client.get("/board/", **HTMX))
    assert _board_column_of(board, ready_initiative.key) == "dev"


def test_admin_records_a_decision(client: Any, admin_user: Any, initiative: Initiative) -> None:
    client.force_login(admin_user)
    data = {"decision": "hold", "rationale": "Budget freeze"}
    response = client.post(_url(initiative, "decisions/"), data)
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.status == Status.ON_HOLD
    assert GateDecision.objects.get().decided_by == admin_user


@pytest.mark.parametrize("rationale", ["", "   "])
def test_decision_needs_a_rationale(
    client: Any, pm: Any, ready_initiative: Initiative, rationale: str
) -> None:
    client.force_login(pm)
    data = {"decision": "go", "rationale": rationale}
    content = html(client.post(_url(ready_initiative, "decisions/"), data), 400)
    assert "This field is required." in section(content, "gate-panel")

    content = html(client.post(_url(ready_initiative, "decisions/"), data, **HTMX), 400)
    assert content.lstrip().startswith(GATE_PANEL)
    assert "This field is required." in content
    ready_initiative.refresh_from_db()
    assert ready_initiative.phase == Phase.BIZ
    assert not GateDecision.objects.exists()


def test_decision_not_allowed_in_the_phase_is_a_conflict(
    client: Any, pm: Any, initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"decision": "retire", "rationale": "Too early"}
    content = html(client.post(_url(initiative, "decisions/"), data), 409)
    assert "is not a decision for an initiative in Biz." in content
    assert "Too early" in content
    assert not GateDecision.objects.exists()


def test_unknown_decision_is_a_form_error(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {"decision": "maybe", "rationale": "Hmm"}
    content = html(client.post(_url(initiative, "decisions/"), data), 400)
    assert "Select a valid choice." in content
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize("decision", ["go", "resume", "kill", "hold"])
def test_decision_on_a_cancelled_initiative_is_a_conflict(
    client: Any, pm: Any, ready_initiative: Initiative, decision: str
) -> None:
    killed = decide(ready_initiative, Decision.KILL, pm)
    client.force_login(pm)
    data = {"decision": decision, "rationale": "Try again"}
    content = html(client.post(_url(killed, "decisions/"), data), 409)
    assert "no further decision is possible" in content

    content = html(client.post(_url(killed, "decisions/"), data, **HTMX), 409)
    assert content.lstrip().startswith(GATE_PANEL)
    killed.refresh_from_db()
    assert killed.status == Status.CANCELLED
    assert GateDecision.objects.count() == 1


def test_hold_and_resume_through_the_page(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    client.post(_url(initiative, "decisions/"), {"decision": "hold", "rationale": "Budget"})
    content = html(client.get(_url(initiative)))
    decision_form = re.search(r'<form[^>]*id="decision-form".*?</form>', content, re.S)
    assert decision_form is not None
    assert set(re.findall(r'name="decision" value="(\w+)"', decision_form.group(0))) == {
        "resume",
        "kill",
    }
    response = client.post(
        _url(initiative, "decisions/"), {"decision": "resume", "rationale": "Ok"}
    )
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.status == Status.ACTIVE
    board = html(client.get("/board/"))
    assert _board_column_of(board, initiative.key) == "biz"


def test_decide_needs_post_and_login(client: Any, pm: Any, initiative: Initiative) -> None:
    data = {"decision": "kill", "rationale": "Anonymous"}
    response = client.post(_url(initiative, "decisions/"), data)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    client.force_login(pm)
    assert client.get(_url(initiative, "decisions/")).status_code == 405
    assert not GateDecision.objects.exists()
