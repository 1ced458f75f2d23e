"""The gate, ticks, decisions and the history of an initiative."""

from __future__ import annotations

import pytest

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative
from phases.models import Criterion, Decision, GateDecision, Tick
from tests.api.helpers import API, error_of
from tests.factories import FULL_STORY, decide, pass_dev_gate

pytestmark = pytest.mark.django_db

BIZ_CRITERIA = [
    ("problem_and_requirements", "auto"),
    ("use_case_and_algorithm", "auto"),
    ("data_feasibility_confirmed", "manual"),
    ("success_kpi_with_target", "auto"),
    ("team_has_engineer_and_scientist", "auto"),
    ("business_signoff", "manual"),
]
BIZ_CODES = [code for code, _ in BIZ_CRITERIA]
DEV_CODES = [
    "iteration_with_feedback",
    "results_accepted",
    "kpi_jobs_trial_passed",
    "ops_owner_on_team",
]


def gate_url(initiative: Initiative) -> str:
    return f"{API}/initiatives/{initiative.key}/gate/"


def criterion_url(initiative: Initiative, code: str) -> str:
    return f"{API}/initiatives/{initiative.key}/criteria/{code}/"


def decisions_url(initiative: Initiative) -> str:
    return f"{API}/initiatives/{initiative.key}/decisions/"


def current_ticks(initiative: Initiative, code: str) -> list[Tick]:
    return list(
        Tick.objects.filter(initiative=initiative, criterion__code=code, revoked_at__isnull=True)
    )


# The gate


def test_the_gate_of_a_new_initiative(api_as, pm, initiative):
    response = api_as(pm).get(gate_url(initiative))

    assert response.status_code == 200
    body = response.json()
    assert body["gate"] == {
        "code": "biz-to-dev",
        "name": "Biz → Dev",
        "from_phase": "biz",
        "to_phase": "dev",
    }
    assert body["all_met"] is False
    assert [(c["code"], c["kind"]) for c in body["criteria"]] == BIZ_CRITERIA
    for criterion in body["criteria"]:
        assert {"code", "kind", "satisfied", "ticked_by", "title", "explanation"} <= set(criterion)
        assert criterion["satisfied"] is False
        assert criterion["ticked_by"] is None
    assert body["decisions"] == ["go", "hold", "kill"]


def test_the_gate_of_a_ready_initiative(api_as, pm, ready_initiative):
    body = api_as(pm).get(gate_url(ready_initiative)).json()

    assert body["all_met"] is True
    by_code = {c["code"]: c for c in body["criteria"]}
    assert all(c["satisfied"] for c in body["criteria"])
    assert by_code["business_signoff"]["ticked_by"] == "stakeholder"
    assert by_code["data_feasibility_confirmed"]["ticked_by"] == "pm"
    assert by_code["problem_and_requirements"]["ticked_by"] is None


def test_the_gate_tells_each_user_what_they_may_do(api_as, stakeholder, ready_initiative):
    body = api_as(stakeholder).get(gate_url(ready_initiative)).json()

    may_tick = {c["code"]: c["can_tick"] for c in body["criteria"]}
    assert may_tick["business_signoff"] is True
    assert may_tick["data_feasibility_confirmed"] is False
    assert body["decisions"] == []  # a stakeholder does not decide


def test_the_gate_in_dev_is_dev_to_ops(api_as, pm, ready_initiative):
    decide(ready_initiative, Decision.GO, pm)

    body = api_as(pm).get(gate_url(ready_initiative)).json()

    assert body["gate"]["code"] == "dev-to-ops"
    assert [c["code"] for c in body["criteria"]] == DEV_CODES


def test_a_closed_initiative_has_no_gate(api_as, pm, initiative):
    decide(initiative, Decision.KILL, pm)

    body = api_as(pm).get(gate_url(initiative)).json()

    assert body == {"gate": None, "all_met": False, "criteria": [], "decisions": []}


# Ticks


def test_tick_a_manual_criterion(api_as, pm, initiative):
    response = api_as(pm).put(
        criterion_url(initiative, "data_feasibility_confirmed"),
        {"note": "Checked the warehouse", "evidence_url": "https://wiki.example.com/feasibility"},
        format="json",
    )

    assert response.status_code == 200, response.json()
    row = {c["code"]: c for c in response.json()["criteria"]}["data_feasibility_confirmed"]
    assert row["satisfied"] is True
    assert row["ticked_by"] == "pm"
    assert row["note"] == "Checked the warehouse"
    [tick] = current_ticks(initiative, "data_feasibility_confirmed")
    assert tick.ticked_by == pm
    assert tick.evidence_url == "https://wiki.example.com/feasibility"


def test_a_tick_needs_no_body(api_as, stakeholder, initiative):
    response = api_as(stakeholder).put(criterion_url(initiative, "business_signoff"))

    assert response.status_code == 200
    assert current_ticks(initiative, "business_signoff")[0].ticked_by == stakeholder


def test_ticking_twice_keeps_one_tick(api_as, pm, initiative):
    client = api_as(pm)
    url = criterion_url(initiative, "data_feasibility_confirmed")

    assert client.put(url, {"note": "first"}, format="json").status_code == 200
    assert client.put(url, {"note": "second"}, format="json").status_code == 200

    [tick] = current_ticks(initiative, "data_feasibility_confirmed")
    assert tick.note == "first"


def test_untick_revokes_the_tick(api_as, pm, initiative):
    client = api_as(pm)
    url = criterion_url(initiative, "data_feasibility_confirmed")
    client.put(url)

    response = client.delete(url)

    assert response.status_code == 204
    assert current_ticks(initiative, "data_feasibility_confirmed") == []
    revoked = Tick.objects.get(initiative=initiative)
    assert revoked.revoked_by == pm
    assert revoked.revoked_at is not None
    row = {c["code"]: c for c in client.get(gate_url(initiative)).json()["criteria"]}
    assert row["data_feasibility_confirmed"]["satisfied"] is False


def test_untick_of_an_unticked_criterion_is_harmless(api_as, pm, initiative):
    response = api_as(pm).delete(criterion_url(initiative, "data_feasibility_confirmed"))

    assert response.status_code == 204
    assert not Tick.objects.exists()


def test_an_automatic_criterion_cannot_be_ticked(api_as, pm, initiative):
    response = api_as(pm).put(criterion_url(initiative, "problem_and_requirements"))

    assert response.status_code == 400
    assert error_of(response)["code"] == "automatic"
    assert not Tick.objects.exists()


def test_a_criterion_of_another_gate_cannot_be_ticked(api_as, stakeholder, initiative):
    response = api_as(stakeholder).put(criterion_url(initiative, "results_accepted"))

    assert response.status_code == 409
    assert error_of(response)["code"] == "not_current_gate"
    assert not Tick.objects.exists()


def test_an_unknown_criterion_is_404(api_as, pm, initiative):
    client = api_as(pm)

    assert client.put(criterion_url(initiative, "no_such_code")).status_code == 404
    assert client.delete(criterion_url(initiative, "no_such_code")).status_code == 404
    error_of(client.put(criterion_url(initiative, "no_such_code")))


def test_a_business_signoff_is_only_the_units_stakeholders(api_as, make_user, initiative):
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")

    response = api_as(outsider).put(criterion_url(initiative, "business_signoff"))

    # A stakeholder of no unit sees no initiative: 404, the initiative is not revealed.
    assert response.status_code == 404
    assert not Tick.objects.exists()


def test_a_bad_evidence_link_is_refused(api_as, pm, initiative):
    response = api_as(pm).put(
        criterion_url(initiative, "data_feasibility_confirmed"),
        {"evidence_url": "javascript:alert(1)"},
        format="json",
    )

    assert response.status_code == 400
    assert "evidence_url" in error_of(response)["fields"]
    assert not Tick.objects.exists()


# Decisions


def test_go_moves_a_ready_initiative_to_dev(api_as, pm, ready_initiative):
    response = api_as(pm).post(
        decisions_url(ready_initiative),
        {"decision": "go", "rationale": "The business signed off."},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["phase"], body["status"]) == ("dev", "active")
    assert (body["from_phase"], body["to_phase"]) == ("biz", "dev")
    assert body["decision"] == "go"
    assert body["decided_by"] == "pm"
    record = GateDecision.objects.get(initiative=ready_initiative)
    assert body["id"] == record.pk
    assert record.rationale == "The business signed off."
    assert [entry["code"] for entry in record.checklist] == BIZ_CODES
    assert all(entry["satisfied"] for entry in record.checklist)
    ready_initiative.refresh_from_db()
    assert (ready_initiative.phase, ready_initiative.status) == ("dev", "active")
    assert ready_initiative.dev_started_at is not None


def test_a_refused_go_lists_every_unmet_criterion(api_as, pm, initiative):
    response = api_as(pm).post(
        decisions_url(initiative), {"decision": "go", "rationale": "Let's go"}, format="json"
    )

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "gate_not_met"
    assert error["unmet"] == BIZ_CODES
    assert not GateDecision.objects.exists()
    initiative.refresh_from_db()
    assert initiative.phase == "biz"


def test_a_refused_go_lists_only_what_is_still_missing(api_as, pm, stakeholder, initiative):
    initiative_services.initiative_update(initiative=initiative, user=pm, **FULL_STORY)
    api_as(stakeholder).put(criterion_url(initiative, "business_signoff"))

    response = api_as(pm).post(
        decisions_url(initiative), {"decision": "go", "rationale": "Let's go"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["unmet"] == [
        "data_feasibility_confirmed",
        "success_kpi_with_target",
        "team_has_engineer_and_scientist",
    ]


def test_an_unticked_signoff_blocks_go_again(api_as, pm, stakeholder, ready_initiative):
    api_as(stakeholder).delete(criterion_url(ready_initiative, "business_signoff"))

    response = api_as(pm).post(
        decisions_url(ready_initiative), {"decision": "go", "rationale": "Go"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["unmet"] == ["business_signoff"]


def test_hold_then_resume(api_as, pm, initiative):
    client = api_as(pm)

    held = client.post(
        decisions_url(initiative), {"decision": "hold", "rationale": "Budget freeze"}, format="json"
    )
    assert held.status_code == 201
    assert (held.json()["phase"], held.json()["status"]) == ("biz", "on_hold")
    initiative.refresh_from_db()
    assert initiative.status == "on_hold"

    resumed = client.post(
        decisions_url(initiative), {"decision": "resume", "rationale": "Budget back"}, format="json"
    )
    assert resumed.status_code == 201
    assert resumed.json()["status"] == "active"
    assert list(
        GateDecision.objects.filter(initiative=initiative).values_list("decision", flat=True)
    ) == ["hold", "resume"]


def test_an_admin_decides(api_as, admin_user, initiative):
    response = api_as(admin_user).post(
        decisions_url(initiative), {"decision": "kill", "rationale": "Not needed"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "cancelled"
    assert GateDecision.objects.get().decided_by == admin_user


@pytest.mark.parametrize("who", ["other_pm", "stakeholder", "engineer", "scientist"])
def test_only_the_accountable_or_an_admin_decides(request, api_as, ready_initiative, who):
    response = api_as(request.getfixturevalue(who)).post(
        decisions_url(ready_initiative), {"decision": "go", "rationale": "Go"}, format="json"
    )

    assert response.status_code == 403
    error_of(response)
    assert not GateDecision.objects.exists()
    ready_initiative.refresh_from_db()
    assert ready_initiative.phase == "biz"


@pytest.mark.parametrize("decision", ["maybe", "", "GO", None, 1])
def test_an_invalid_decision_is_400(api_as, pm, initiative, decision):
    response = api_as(pm).post(
        decisions_url(initiative), {"decision": decision, "rationale": "x"}, format="json"
    )

    assert response.status_code == 400
    assert "decision" in error_of(response)["fields"]
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize("rationale", ["", "   ", None])
def test_a_rationale_is_required(api_as, pm, initiative, rationale):
    response = api_as(pm).post(
        decisions_url(initiative), {"decision": "hold", "rationale": rationale}, format="json"
    )

    assert response.status_code == 400
    assert "rationale" in error_of(response)["fields"]
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize("decision", ["resume", "recycle", "retire"])
def test_a_decision_that_does_not_fit_is_409(api_as, pm, initiative, decision):
    response = api_as(pm).post(
        decisions_url(initiative), {"decision": decision, "rationale": "x"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "not_allowed"
    assert not GateDecision.objects.exists()


def test_no_decision_after_a_final_one(api_as, pm, initiative):
    decide(initiative, Decision.KILL, pm)

    response = api_as(pm).post(
        decisions_url(initiative), {"decision": "resume", "rationale": "x"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "final_status"
    assert GateDecision.objects.count() == 1


def test_recycle_from_dev_goes_back_to_biz_and_revokes_signoffs(api_as, pm, ready_initiative):
    decide(ready_initiative, Decision.GO, pm)

    response = api_as(pm).post(
        decisions_url(ready_initiative),
        {"decision": "recycle", "rationale": "Re-align with the business"},
        format="json",
    )

    assert response.status_code == 201
    assert (response.json()["phase"], response.json()["status"]) == ("biz", "active")
    assert current_ticks(ready_initiative, "business_signoff") == []


def test_decisions_take_only_post(api_as, pm, initiative):
    assert api_as(pm).get(decisions_url(initiative)).status_code == 405


# History


def test_the_history_lists_everything_newest_first(api_as, pm, stakeholder, ready_initiative):
    api_as(pm).post(
        decisions_url(ready_initiative),
        {"decision": "go", "rationale": "Signed off"},
        format="json",
    )

    response = api_as(stakeholder).get(f"{API}/initiatives/{ready_initiative.key}/history/")

    assert response.status_code == 200
    events = response.json()
    assert isinstance(events, list)
    assert set(events[0]) == {"at", "kind", "actor", "title", "detail"}
    assert events[0]["kind"] == "decision"
    assert events[0]["actor"] == "pm"
    assert events[0]["detail"] == "Signed off"
    assert events[-1]["kind"] == "created"
    kinds = {event["kind"] for event in events}
    assert {"created", "joined", "tick", "decision"} <= kinds
    stamps = [event["at"] for event in events]
    assert stamps == sorted(stamps, reverse=True)


def test_the_history_shows_unticks(api_as, pm, initiative):
    client = api_as(pm)
    url = criterion_url(initiative, "data_feasibility_confirmed")
    client.put(url)
    client.delete(url)

    events = client.get(f"{API}/initiatives/{initiative.key}/history/").json()

    assert [event["kind"] for event in events[:2]] == ["untick", "tick"]


def test_criteria_are_rows_of_the_database(db):
    # The codes these tests use come from the data migration.
    assert set(BIZ_CODES + DEV_CODES) <= set(Criterion.objects.values_list("code", flat=True))


def test_a_refused_go_out_of_dev_lists_the_dev_gate(api_as, pm, dev_initiative):
    response = api_as(pm).post(
        decisions_url(dev_initiative), {"decision": "go", "rationale": "Ship it"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["unmet"] == [
        "iteration_with_feedback",
        "results_accepted",
        "kpi_jobs_trial_passed",
    ]


def test_go_out_of_dev_enters_ops_and_the_scientist_leaves(
    api_as, pm, stakeholder, scientist, dev_initiative
):
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)

    response = api_as(pm).post(
        decisions_url(dev_initiative), {"decision": "go", "rationale": "Ship it"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["phase"], response.json()["status"]) == ("ops", "active")
    dev_initiative.refresh_from_db()
    assert dev_initiative.phase == "ops"
    team = api_as(pm).get(f"{API}/initiatives/{dev_initiative.key}/members/").json()
    assert "scientist" not in [row["user"] for row in team]
