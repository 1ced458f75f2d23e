from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from bizdevops.errors import ConflictError, DomainError
from initiatives.models import Phase, Status, TeamRole
from phases import rules
from phases.models import Criterion, Decision, GateDecision
from phases.services import GateError, criterion_untick, gate_decide
from tests.factories import decide, pass_dev_gate

BIZ_CODES = {
    "problem_and_requirements",
    "use_case_and_algorithm",
    "data_feasibility_confirmed",
    "success_kpi_with_target",
    "team_has_engineer_and_scientist",
    "business_signoff",
}


def test_go_on_a_fresh_initiative_names_every_unmet_criterion(initiative, pm):
    with pytest.raises(GateError) as refused:
        gate_decide(initiative=initiative, decision="go", rationale="Let's go", user=pm)
    assert set(refused.value.unmet_codes) == BIZ_CODES
    assert refused.value.status_code == 409
    for title in Criterion.objects.filter(code__in=BIZ_CODES).values_list("title", flat=True):
        assert title in refused.value.message
    initiative.refresh_from_db()
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.ACTIVE)
    assert not GateDecision.objects.exists()


def test_go_names_only_what_is_still_missing(ready_initiative, pm, stakeholder):
    criterion_untick(
        initiative=ready_initiative,
        criterion=Criterion.objects.get(code="business_signoff"),
        user=stakeholder,
    )
    with pytest.raises(GateError) as refused:
        gate_decide(initiative=ready_initiative, decision="go", rationale="Go", user=pm)
    assert refused.value.unmet_codes == ["business_signoff"]


def test_go_from_biz_enters_dev_and_starts_the_timebox(ready_initiative, pm):
    initiative = decide(ready_initiative, Decision.GO, pm)
    assert (initiative.phase, initiative.status) == (Phase.DEV, Status.ACTIVE)
    assert initiative.dev_started_at is not None
    assert initiative.dev_days_left == 7 * initiative.dev_timebox_weeks


def test_decision_records_who_why_and_a_checklist_snapshot(ready_initiative, pm):
    record = gate_decide(
        initiative=ready_initiative, decision="go", rationale="  Business is aligned ", user=pm
    )
    assert record.decided_by == pm
    assert record.rationale == "Business is aligned"
    assert (record.from_phase, record.to_phase) == (Phase.BIZ, Phase.DEV)
    assert (record.from_status, record.to_status) == (Status.ACTIVE, Status.ACTIVE)
    assert record.gate.code == "biz-to-dev"
    assert {row["code"] for row in record.checklist} == BIZ_CODES
    assert all(row["satisfied"] for row in record.checklist)
    signoff = next(row for row in record.checklist if row["code"] == "business_signoff")
    assert signoff["ticked_by"] == "stakeholder"


def test_snapshot_does_not_change_when_the_data_does(ready_initiative, pm):
    record = gate_decide(initiative=ready_initiative, decision="hold", rationale="Wait", user=pm)
    ready_initiative.kpis.update(target=None)
    record.refresh_from_db()
    kpi_row = next(row for row in record.checklist if row["code"] == "success_kpi_with_target")
    assert kpi_row["satisfied"] is True


def test_go_from_dev_enters_ops_and_scientists_leave(ready_initiative, pm, stakeholder):
    initiative = decide(ready_initiative, Decision.GO, pm)
    with pytest.raises(GateError) as refused:
        gate_decide(initiative=initiative, decision="go", rationale="Ops", user=pm)
    assert set(refused.value.unmet_codes) == {
        "iteration_with_feedback",
        "results_accepted",
        "kpi_jobs_trial_passed",
    }
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    assert (initiative.phase, initiative.status) == (Phase.OPS, Status.ACTIVE)
    active = set(initiative.memberships.filter(left_at__isnull=True).values_list("role", flat=True))
    assert active == {TeamRole.DATA_ENGINEER}
    left = initiative.memberships.get(role=TeamRole.DATA_SCIENTIST)
    assert left.left_at is not None and "Ops" in left.leave_reason


def test_go_in_ops_is_not_a_decision(ready_initiative, pm, stakeholder):
    initiative = decide(ready_initiative, Decision.GO, pm)
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    with pytest.raises(ConflictError, match="not a decision for an initiative in Ops"):
        gate_decide(initiative=initiative, decision="go", rationale="More", user=pm)


def test_hold_keeps_phase_and_resume_reactivates(ready_initiative, pm):
    initiative = decide(ready_initiative, Decision.GO, pm)
    initiative = decide(initiative, Decision.HOLD, pm)
    assert (initiative.phase, initiative.status) == (Phase.DEV, Status.ON_HOLD)
    with pytest.raises(ConflictError, match="needs status active"):
        gate_decide(initiative=initiative, decision="go", rationale="Go", user=pm)
    with pytest.raises(ConflictError):
        gate_decide(initiative=initiative, decision="hold", rationale="Again", user=pm)
    initiative = decide(initiative, Decision.RESUME, pm)
    assert (initiative.phase, initiative.status) == (Phase.DEV, Status.ACTIVE)
    with pytest.raises(ConflictError, match="needs status on hold"):
        gate_decide(initiative=initiative, decision="resume", rationale="Again", user=pm)


def test_recycle_dev_to_biz_asks_for_a_new_sign_off(ready_initiative, pm):
    initiative = decide(ready_initiative, Decision.GO, pm)
    initiative = decide(initiative, Decision.RECYCLE, pm)
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.ACTIVE)
    states = rules.checklist(initiative, rules.gate_out_of(Phase.BIZ))
    assert {s.criterion.code for s in rules.unmet(states)} == {
        "data_feasibility_confirmed",
        "business_signoff",
    }
    revoked = initiative.ticks.filter(revoked_at__isnull=False)
    assert revoked.count() == 2
    assert all("Recycled" in tick.revoke_reason for tick in revoked)


def test_recycle_ops_to_dev_restarts_the_timebox(ready_initiative, pm, stakeholder):
    initiative = decide(ready_initiative, Decision.GO, pm)
    first_start = initiative.dev_started_at
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    initiative = decide(initiative, Decision.HOLD, pm)
    initiative = decide(initiative, Decision.RECYCLE, pm)
    assert (initiative.phase, initiative.status) == (Phase.DEV, Status.ACTIVE)
    assert initiative.dev_started_at > first_start


def test_recycle_from_biz_is_refused(initiative, pm):
    with pytest.raises(ConflictError, match="not a decision for an initiative in Biz"):
        gate_decide(initiative=initiative, decision="recycle", rationale="Back", user=pm)


def test_retire_only_from_ops(ready_initiative, pm, stakeholder):
    with pytest.raises(ConflictError):
        gate_decide(initiative=ready_initiative, decision="retire", rationale="Done", user=pm)
    initiative = decide(ready_initiative, Decision.GO, pm)
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    initiative = decide(initiative, Decision.RETIRE, pm)
    assert (initiative.phase, initiative.status) == (Phase.OPS, Status.RETIRED)


@pytest.mark.parametrize("final", [Decision.KILL, Decision.RETIRE])
def test_final_statuses_refuse_every_further_decision(ready_initiative, pm, stakeholder, final):
    initiative = decide(ready_initiative, Decision.GO, pm)
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    initiative = decide(initiative, final, pm)
    assert initiative.is_final
    assert rules.available_decisions(initiative) == []
    for decision in Decision:
        with pytest.raises(ConflictError, match="no further decision"):
            gate_decide(initiative=initiative, decision=decision, rationale="Again", user=pm)
    assert GateDecision.objects.filter(initiative=initiative).count() == 3


def test_kill_cancels_from_any_phase_and_from_hold(initiative, pm):
    initiative = decide(initiative, Decision.HOLD, pm)
    initiative = decide(initiative, Decision.KILL, pm)
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.CANCELLED)


def test_only_the_accountable_pm_or_an_admin_decides(
    ready_initiative, other_pm, stakeholder, engineer, admin_user
):
    for outsider in (other_pm, stakeholder, engineer):
        with pytest.raises(PermissionDenied):
            gate_decide(initiative=ready_initiative, decision="hold", rationale="No", user=outsider)
    assert not GateDecision.objects.exists()
    initiative = decide(ready_initiative, Decision.GO, admin_user)
    assert initiative.phase == Phase.DEV


def test_rationale_is_required_and_decision_must_exist(initiative, pm):
    with pytest.raises(DomainError) as blank:
        gate_decide(initiative=initiative, decision="hold", rationale="   ", user=pm)
    assert blank.value.field == "rationale"
    with pytest.raises(DomainError) as unknown:
        gate_decide(initiative=initiative, decision="launch", rationale="Go", user=pm)
    assert unknown.value.field == "decision"


def test_available_decisions_follow_the_table(ready_initiative, pm):
    assert set(rules.available_decisions(ready_initiative)) == {
        Decision.GO,
        Decision.HOLD,
        Decision.KILL,
    }
    initiative = decide(ready_initiative, Decision.HOLD, pm)
    assert set(rules.available_decisions(initiative)) == {Decision.RESUME, Decision.KILL}


def test_decisions_are_append_only(initiative, pm):
    record = gate_decide(initiative=initiative, decision="hold", rationale="Wait", user=pm)
    record.rationale = "Rewritten"
    with pytest.raises(PermissionError):
        record.save()
    with pytest.raises(PermissionError):
        record.delete()
    record.refresh_from_db()
    assert record.rationale == "Wait"
