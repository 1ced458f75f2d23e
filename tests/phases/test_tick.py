from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from bizdevops.errors import ConflictError, DomainError
from phases import rules
from phases.models import Criterion, Decision, Tick
from phases.services import criterion_tick, criterion_untick
from tests.factories import BusinessUnitFactory, decide


@pytest.fixture
def signoff(db):
    return Criterion.objects.get(code="business_signoff")


@pytest.fixture
def feasibility(db):
    return Criterion.objects.get(code="data_feasibility_confirmed")


def test_stakeholder_of_the_unit_signs_off(initiative, stakeholder, signoff):
    tick = criterion_tick(
        initiative=initiative,
        criterion=signoff,
        user=stakeholder,
        note="Agreed in the steering meeting",
        evidence_url="https://wiki.example.com/minutes/42",
    )
    assert (tick.ticked_by, tick.note) == (stakeholder, "Agreed in the steering meeting")
    state = next(s for s in rules.checklist(initiative, signoff.gate) if s.criterion == signoff)
    assert state.satisfied and state.tick == tick
    assert "stakeholder" in state.explanation


def test_sign_off_only_by_a_stakeholder_of_that_unit(
    initiative, signoff, pm, admin_user, make_user
):
    from bizdevops.roles import Role

    elsewhere = make_user(Role.BUSINESS_STAKEHOLDER, username="marketing-lead")
    BusinessUnitFactory(name="Marketing").stakeholders.add(elsewhere)
    for user in (pm, admin_user, elsewhere):
        with pytest.raises(PermissionDenied):
            criterion_tick(initiative=initiative, criterion=signoff, user=user)
    assert not Tick.objects.exists()


def test_a_unit_member_without_the_stakeholder_role_cannot_sign_off(
    initiative, signoff, make_user, unit
):
    from bizdevops.roles import Role

    engineer_in_unit = make_user(Role.DATA_ENGINEER, username="eng-in-unit")
    unit.stakeholders.add(engineer_in_unit)
    with pytest.raises(PermissionDenied):
        criterion_tick(initiative=initiative, criterion=signoff, user=engineer_in_unit)


def test_team_criteria_by_pm_or_team_members(initiative, feasibility, pm, engineer, scientist):
    from initiatives.services import member_add

    with pytest.raises(PermissionDenied):
        criterion_tick(initiative=initiative, criterion=feasibility, user=engineer)
    member_add(initiative=initiative, member=engineer, role="data_engineer", user=pm)
    tick = criterion_tick(initiative=initiative, criterion=feasibility, user=engineer)
    assert tick.ticked_by == engineer


def test_automatic_criteria_cannot_be_ticked(initiative, pm):
    auto = Criterion.objects.get(code="problem_and_requirements")
    with pytest.raises(DomainError, match="computed from data"):
        criterion_tick(initiative=initiative, criterion=auto, user=pm)


def test_only_the_next_gate_can_be_ticked(initiative, stakeholder):
    later = Criterion.objects.get(code="results_accepted")
    with pytest.raises(ConflictError, match="next gate"):
        criterion_tick(initiative=initiative, criterion=later, user=stakeholder)


def test_inactive_criteria_cannot_be_ticked_and_do_not_count(initiative, feasibility, pm):
    feasibility.active = False
    feasibility.save()
    with pytest.raises(ConflictError):
        criterion_tick(initiative=initiative, criterion=feasibility, user=pm)
    codes = {s.criterion.code for s in rules.checklist(initiative, feasibility.gate)}
    assert "data_feasibility_confirmed" not in codes


def test_ticking_twice_is_idempotent(initiative, feasibility, pm):
    first = criterion_tick(initiative=initiative, criterion=feasibility, user=pm)
    second = criterion_tick(initiative=initiative, criterion=feasibility, user=pm, note="again")
    assert first.pk == second.pk
    assert Tick.objects.count() == 1


def test_untick_revokes_and_keeps_the_row(initiative, feasibility, pm):
    criterion_tick(initiative=initiative, criterion=feasibility, user=pm)
    revoked = criterion_untick(
        initiative=initiative, criterion=feasibility, user=pm, reason="Data owner withdrew"
    )
    assert revoked is not None and revoked.revoked_by == pm
    assert revoked.revoke_reason == "Data owner withdrew"
    assert criterion_untick(initiative=initiative, criterion=feasibility, user=pm) is None
    assert Tick.objects.count() == 1
    again = criterion_tick(initiative=initiative, criterion=feasibility, user=pm)
    assert again.pk != revoked.pk


def test_untick_needs_the_same_right_as_tick(initiative, signoff, stakeholder, pm):
    criterion_tick(initiative=initiative, criterion=signoff, user=stakeholder)
    with pytest.raises(PermissionDenied):
        criterion_untick(initiative=initiative, criterion=signoff, user=pm)


def test_closed_initiatives_refuse_ticks(initiative, feasibility, pm):
    decide(initiative, Decision.KILL, pm)
    with pytest.raises(ConflictError):
        criterion_tick(initiative=initiative, criterion=feasibility, user=pm)


def test_automatic_checks_explain_what_is_missing(initiative, pm):
    states = {s.criterion.code: s for s in rules.checklist(initiative, rules.gate_out_of("biz"))}
    assert "business problem" in states["problem_and_requirements"].explanation
    team = states["team_has_engineer_and_scientist"].explanation
    assert "data engineer" in team and "data scientist" in team
    assert states["success_kpi_with_target"].explanation == "No KPI defined yet."
