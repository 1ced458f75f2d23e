from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from bizdevops.errors import ConflictError, DomainError
from initiatives.models import Initiative, Phase, TeamRole
from initiatives.services import initiative_hand_over, member_add, member_remove
from kpis.models import KPI, Direction
from kpis.services import kpi_define, kpi_update
from phases.checks import run_check
from phases.models import Criterion, CriterionKind, Decision
from tests.factories import decide, make_initiative

pytestmark = pytest.mark.django_db


def _define(initiative, user, name="Fraud caught", **values: Any) -> KPI:
    return kpi_define(initiative=initiative, user=user, name=name, **values)


def _plain_domain_error(excinfo: pytest.ExceptionInfo[DomainError], field: str | None) -> None:
    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == field


# kpi_define: who may


def test_accountable_defines_a_kpi(initiative, pm):
    kpi = _define(
        initiative,
        pm,
        name="  False alarm rate  ",
        unit="%",
        description="Share of flagged transactions that were fine",
        direction=Direction.LOWER,
        target=2.0,
        warning_threshold=5.0,
        critical_threshold=10.0,
    )

    kpi.refresh_from_db()
    assert kpi.initiative_id == initiative.pk
    assert kpi.name == "False alarm rate"
    assert kpi.unit == "%"
    assert kpi.description == "Share of flagged transactions that were fine"
    assert kpi.direction == Direction.LOWER
    assert (kpi.target, kpi.warning_threshold, kpi.critical_threshold) == (2.0, 5.0, 10.0)
    assert kpi.created_by == pm


def test_direction_defaults_to_higher_is_better(initiative, pm):
    kpi = _define(initiative, pm)

    kpi.refresh_from_db()
    assert kpi.direction == Direction.HIGHER
    assert kpi.target is None


def test_admin_defines_a_kpi(initiative, admin_user):
    assert _define(initiative, admin_user).created_by == admin_user


@pytest.mark.parametrize(
    ("who", "role"),
    [("engineer", TeamRole.DATA_ENGINEER), ("devops", TeamRole.DEVOPS_ENGINEER)],
)
def test_engineers_on_the_team_define_kpis(request, initiative, pm, who, role):
    engineer = request.getfixturevalue(who)
    member_add(initiative=initiative, member=engineer, role=role, user=pm)

    assert _define(initiative, engineer).created_by == engineer


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "engineer", "devops", "scientist"])
def test_others_may_not_define(request, initiative, who):
    # Nobody but pm is on the team here: an engineer not on the team may not either.
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        _define(initiative, user)

    assert not initiative.kpis.exists()


@pytest.mark.parametrize(
    ("who", "role"),
    [("scientist", TeamRole.DATA_SCIENTIST), ("stakeholder", TeamRole.STAKEHOLDER)],
)
def test_team_members_who_are_not_engineers_may_not_define(request, initiative, pm, who, role):
    member = request.getfixturevalue(who)
    member_add(initiative=initiative, member=member, role=role, user=pm)

    with pytest.raises(PermissionDenied):
        _define(initiative, member)

    assert not initiative.kpis.exists()


def test_engineer_who_left_the_team_may_not_define(initiative, pm, engineer):
    membership = member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    member_remove(membership=membership, user=pm)

    with pytest.raises(PermissionDenied):
        _define(initiative, engineer)


# kpi_update: who may


@pytest.fixture
def kpi(initiative, pm) -> KPI:
    return _define(initiative, pm, target=90.0, warning_threshold=80.0, critical_threshold=70.0)


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_and_admin_update(request, kpi, who):
    user = request.getfixturevalue(who)

    kpi_update(kpi=kpi, user=user, target=95.0, description="Raised")

    kpi.refresh_from_db()
    assert kpi.target == 95.0
    assert kpi.description == "Raised"
    assert (kpi.warning_threshold, kpi.critical_threshold) == (80.0, 70.0)


def test_engineer_on_the_team_updates(kpi, initiative, pm, engineer):
    member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    kpi_update(kpi=kpi, user=engineer, unit="%")

    kpi.refresh_from_db()
    assert kpi.unit == "%"


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "engineer", "scientist"])
def test_others_may_not_update(request, kpi, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        kpi_update(kpi=kpi, user=user, target=1.0)

    kpi.refresh_from_db()
    assert kpi.target == 90.0


# Names


@pytest.mark.parametrize("name", ["", "   ", None])
def test_name_is_required(initiative, pm, name):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, name=name)

    _plain_domain_error(excinfo, "name")
    assert excinfo.value.code == "required"
    assert not initiative.kpis.exists()


def test_name_cannot_be_blanked_on_update(kpi, pm):
    with pytest.raises(DomainError) as excinfo:
        kpi_update(kpi=kpi, user=pm, name="  ")

    _plain_domain_error(excinfo, "name")
    kpi.refresh_from_db()
    assert kpi.name == "Fraud caught"


@pytest.mark.parametrize(
    "name", ["Fraud caught", "fraud caught", "FRAUD CAUGHT", "  Fraud Caught "]
)
def test_name_is_unique_per_initiative_case_insensitively(kpi, initiative, pm, name):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, name=name)

    _plain_domain_error(excinfo, "name")
    assert initiative.kpis.count() == 1


def test_same_name_on_another_initiative_is_fine(kpi, pm, unit):
    other = make_initiative(pm, unit, title="Other")

    twin = _define(other, pm, name="Fraud caught")

    assert twin.pk != kpi.pk
    assert KPI.objects.filter(name="Fraud caught").count() == 2


def test_rename_to_another_kpis_name_is_refused(kpi, initiative, pm):
    second = _define(initiative, pm, name="False alarms", direction=Direction.LOWER)

    with pytest.raises(DomainError) as excinfo:
        kpi_update(kpi=second, user=pm, name="FRAUD caught")

    _plain_domain_error(excinfo, "name")
    second.refresh_from_db()
    assert second.name == "False alarms"


def test_update_may_recase_its_own_name(kpi, pm):
    kpi_update(kpi=kpi, user=pm, name=" Fraud Caught ")

    kpi.refresh_from_db()
    assert kpi.name == "Fraud Caught"


# Thresholds

VALID_HIGHER = [
    {"target": 90.0, "warning_threshold": 80.0, "critical_threshold": 70.0},
    {"target": 90.0, "warning_threshold": 90.0, "critical_threshold": 90.0},
    {"target": 90.0, "warning_threshold": 80.0},
    {"target": 90.0, "critical_threshold": 70.0},
    {"warning_threshold": 80.0, "critical_threshold": 70.0},
    {"target": -1.0, "warning_threshold": -2.0, "critical_threshold": -3.0},
    {"target": 90.0},
    {},
]
INVALID_HIGHER = [
    {"target": 90.0, "warning_threshold": 95.0, "critical_threshold": 70.0},
    {"target": 90.0, "warning_threshold": 80.0, "critical_threshold": 85.0},
    {"target": 70.0, "warning_threshold": 80.0, "critical_threshold": 90.0},
    {"target": 90.0, "warning_threshold": 95.0},
    {"target": 90.0, "critical_threshold": 95.0},
    {"warning_threshold": 70.0, "critical_threshold": 80.0},
]
VALID_LOWER = [
    {"target": 2.0, "warning_threshold": 5.0, "critical_threshold": 10.0},
    {"target": 5.0, "warning_threshold": 5.0, "critical_threshold": 5.0},
    {"target": 2.0, "warning_threshold": 5.0},
    {"target": 2.0, "critical_threshold": 10.0},
    {"warning_threshold": 5.0, "critical_threshold": 10.0},
    {"target": 2.0},
    {},
]
INVALID_LOWER = [
    {"target": 2.0, "warning_threshold": 1.0, "critical_threshold": 10.0},
    {"target": 2.0, "warning_threshold": 5.0, "critical_threshold": 4.0},
    {"target": 10.0, "warning_threshold": 5.0, "critical_threshold": 2.0},
    {"target": 2.0, "warning_threshold": 1.0},
    {"target": 2.0, "critical_threshold": 1.0},
    {"warning_threshold": 10.0, "critical_threshold": 5.0},
]


@pytest.mark.parametrize("values", VALID_HIGHER)
def test_valid_thresholds_higher_is_better(initiative, pm, values):
    kpi = _define(initiative, pm, direction=Direction.HIGHER, **values)

    kpi.refresh_from_db()
    for field, value in values.items():
        assert getattr(kpi, field) == value


@pytest.mark.parametrize("values", INVALID_HIGHER)
def test_invalid_thresholds_higher_is_better(initiative, pm, values):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, direction=Direction.HIGHER, **values)

    _plain_domain_error(excinfo, "warning_threshold")
    assert not initiative.kpis.exists()


@pytest.mark.parametrize("values", VALID_LOWER)
def test_valid_thresholds_lower_is_better(initiative, pm, values):
    kpi = _define(initiative, pm, direction=Direction.LOWER, **values)

    kpi.refresh_from_db()
    for field, value in values.items():
        assert getattr(kpi, field) == value


@pytest.mark.parametrize("values", INVALID_LOWER)
def test_invalid_thresholds_lower_is_better(initiative, pm, values):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, direction=Direction.LOWER, **values)

    _plain_domain_error(excinfo, "warning_threshold")
    assert not initiative.kpis.exists()


def test_update_checks_thresholds_against_the_stored_ones(kpi, pm):
    # Stored: target 90, warning 80, critical 70 (higher is better).
    with pytest.raises(DomainError) as excinfo:
        kpi_update(kpi=kpi, user=pm, target=75.0)

    _plain_domain_error(excinfo, "warning_threshold")
    kpi.refresh_from_db()
    assert kpi.target == 90.0


def test_update_flipping_direction_checks_the_thresholds(kpi, pm):
    with pytest.raises(DomainError):
        kpi_update(kpi=kpi, user=pm, direction=Direction.LOWER)

    kpi.refresh_from_db()
    assert kpi.direction == Direction.HIGHER


def test_update_flipping_direction_with_reordered_thresholds(kpi, pm):
    kpi_update(
        kpi=kpi,
        user=pm,
        direction=Direction.LOWER,
        target=70.0,
        warning_threshold=80.0,
        critical_threshold=90.0,
    )

    kpi.refresh_from_db()
    assert kpi.direction == Direction.LOWER
    assert (kpi.target, kpi.warning_threshold, kpi.critical_threshold) == (70.0, 80.0, 90.0)


@pytest.mark.parametrize("direction", ["sideways", "HIGHER", "up"])
def test_unknown_direction_is_refused(initiative, pm, direction):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, direction=direction)

    _plain_domain_error(excinfo, "direction")
    assert not initiative.kpis.exists()


# Unknown fields and closed initiatives


@pytest.mark.parametrize("field", ["initiative_id", "created_by", "colour", "id"])
def test_unknown_fields_are_refused_on_define(initiative, pm, field):
    with pytest.raises(DomainError) as excinfo:
        _define(initiative, pm, **{field: None})

    _plain_domain_error(excinfo, None)
    assert field in excinfo.value.message
    assert not initiative.kpis.exists()


@pytest.mark.parametrize("field", ["initiative", "created_by", "colour", "id"])
def test_unknown_fields_are_refused_on_update(kpi, pm, other_pm, field):
    with pytest.raises(DomainError) as excinfo:
        kpi_update(kpi=kpi, user=pm, **{field: other_pm})

    _plain_domain_error(excinfo, None)
    kpi.refresh_from_db()
    assert kpi.created_by == pm


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_cancelled_initiative_refuses_new_kpis(request, initiative, pm, who):
    decide(initiative, Decision.KILL, pm)
    user = request.getfixturevalue(who)

    with pytest.raises(ConflictError) as excinfo:
        _define(initiative, user)

    assert excinfo.value.code == "final_status"
    assert not initiative.kpis.exists()


def test_cancelled_initiative_refuses_kpi_changes(kpi, initiative, pm, admin_user):
    decide(initiative, Decision.KILL, pm)

    for user in (pm, admin_user):
        with pytest.raises(ConflictError) as excinfo:
            kpi_update(kpi=kpi, user=user, target=99.0)
        assert excinfo.value.code == "final_status"

    kpi.refresh_from_db()
    assert kpi.target == 90.0


def test_kpi_define_checks_the_stored_status_not_a_stale_copy(initiative, pm):
    # The initiative services re-read the initiative under a row lock, so a decision taken
    # meanwhile (here: kill) is seen; a KPI must not be added to a cancelled initiative.
    stale = Initiative.objects.get(pk=initiative.pk)
    decide(initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        _define(stale, pm)

    assert not initiative.kpis.exists()


def test_kpi_define_checks_the_stored_owner_not_a_stale_copy(initiative, pm, other_pm):
    stale = Initiative.objects.get(pk=initiative.pk)
    initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    with pytest.raises(PermissionDenied):
        _define(stale, pm)

    assert not initiative.kpis.exists()


def test_kpi_update_checks_the_stored_status(kpi, initiative, pm):
    # `kpi.initiative` is cached in memory as active; the service must read the row.
    assert kpi.initiative.status == "active"
    decide(initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        kpi_update(kpi=kpi, user=pm, target=99.0)


def test_initiative_on_hold_still_takes_kpis(initiative, pm):
    decide(initiative, Decision.HOLD, pm)

    assert _define(initiative, pm).pk is not None


# The Biz -> Dev gate check


def test_gate_check_without_kpi(initiative):
    result = run_check("success_kpi_with_target", initiative)

    assert result.satisfied is False
    assert result.explanation


def test_gate_check_with_kpi_without_target(initiative, pm):
    _define(initiative, pm, warning_threshold=80.0)

    result = run_check("success_kpi_with_target", initiative)

    assert result.satisfied is False
    assert result.explanation


def test_gate_check_with_target(initiative, pm):
    _define(initiative, pm, name="No target yet")
    _define(initiative, pm, name="With target", target=90.0)

    assert run_check("success_kpi_with_target", initiative).satisfied is True


def test_gate_check_with_zero_target(initiative, pm):
    _define(initiative, pm, target=0.0, direction=Direction.LOWER)

    assert run_check("success_kpi_with_target", initiative).satisfied is True


def test_gate_check_follows_target_removal(kpi, initiative, pm):
    assert run_check("success_kpi_with_target", initiative).satisfied is True

    kpi_update(kpi=kpi, user=pm, target=None)

    assert run_check("success_kpi_with_target", initiative).satisfied is False


def test_gate_check_ignores_other_initiatives_kpis(initiative, pm, unit):
    other = make_initiative(pm, unit, title="Other")
    _define(other, pm, target=90.0)

    assert run_check("success_kpi_with_target", initiative).satisfied is False
    assert run_check("success_kpi_with_target", other).satisfied is True


def test_gate_check_is_a_criterion_of_the_biz_gate():
    criterion = Criterion.objects.get(code="success_kpi_with_target")

    assert criterion.check_name == "success_kpi_with_target"
    assert criterion.kind == CriterionKind.AUTO
    assert criterion.gate.from_phase == Phase.BIZ
