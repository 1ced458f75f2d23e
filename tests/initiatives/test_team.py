from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from bizdevops.roles import Role
from initiatives import permissions
from initiatives.models import Membership, Phase, TeamRole
from initiatives.services import member_add, member_remove
from phases.models import Decision
from tests.factories import decide, make_initiative, pass_dev_gate

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("who", "role"),
    [
        ("scientist", TeamRole.DATA_SCIENTIST),
        ("engineer", TeamRole.DATA_ENGINEER),
        ("devops", TeamRole.DEVOPS_ENGINEER),
        ("stakeholder", TeamRole.STAKEHOLDER),
    ],
)
def test_accountable_adds_a_member_in_the_matching_role(request, initiative, pm, who, role):
    member = request.getfixturevalue(who)
    before = timezone.now()

    membership = member_add(initiative=initiative, member=member, role=role, user=pm)

    membership.refresh_from_db()
    assert membership.initiative_id == initiative.pk
    assert membership.user == member
    assert membership.role == role
    assert membership.added_by == pm
    assert membership.joined_at >= before
    assert membership.left_at is None
    assert membership.removed_by is None
    assert membership.is_active
    assert permissions.active_roles_on(member, initiative) == {role}


def test_role_may_be_given_as_plain_string(initiative, pm, engineer):
    membership = member_add(initiative=initiative, member=engineer, role="data_engineer", user=pm)

    assert membership.role == TeamRole.DATA_ENGINEER


def test_admin_staffs_the_team(initiative, admin_user, engineer):
    membership = member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=admin_user
    )

    assert membership.added_by == admin_user


@pytest.mark.parametrize(
    ("who", "role"),
    [
        ("engineer", TeamRole.DATA_SCIENTIST),
        ("scientist", TeamRole.DATA_ENGINEER),
        ("engineer", TeamRole.DEVOPS_ENGINEER),
        ("devops", TeamRole.DATA_ENGINEER),
        ("pm", TeamRole.STAKEHOLDER),
        ("stakeholder", TeamRole.DATA_SCIENTIST),
        ("admin_user", TeamRole.DATA_ENGINEER),
    ],
)
def test_role_must_match_the_group(request, initiative, pm, who, role):
    member = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        member_add(initiative=initiative, member=member, role=role, user=pm)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "user"
    assert not initiative.memberships.exists()


@pytest.mark.parametrize("role", ["cook", "", "Data scientist", "program_manager"])
def test_unknown_role_is_refused(initiative, pm, scientist, role):
    with pytest.raises(DomainError) as excinfo:
        member_add(initiative=initiative, member=scientist, role=role, user=pm)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "role"
    assert not initiative.memberships.exists()


def test_inactive_person_cannot_join(initiative, pm, make_user):
    gone = make_user(Role.DATA_ENGINEER, username="gone", is_active=False)

    with pytest.raises(DomainError) as excinfo:
        member_add(initiative=initiative, member=gone, role=TeamRole.DATA_ENGINEER, user=pm)

    assert excinfo.value.field == "user"
    assert not initiative.memberships.exists()


def test_duplicate_active_membership_is_a_conflict(initiative, pm, engineer):
    member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    with pytest.raises(ConflictError) as excinfo:
        member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    assert excinfo.value.field == "user"
    assert initiative.memberships.count() == 1


def test_one_person_may_hold_two_roles(initiative, pm, make_user):
    both = make_user(Role.DATA_ENGINEER, Role.DEVOPS_ENGINEER, username="both")

    member_add(initiative=initiative, member=both, role=TeamRole.DATA_ENGINEER, user=pm)
    member_add(initiative=initiative, member=both, role=TeamRole.DEVOPS_ENGINEER, user=pm)

    assert permissions.active_roles_on(both, initiative) == {
        TeamRole.DATA_ENGINEER,
        TeamRole.DEVOPS_ENGINEER,
    }


def test_same_person_may_be_on_two_initiatives(initiative, pm, unit, engineer):
    second = make_initiative(pm, unit, title="Second")

    member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)
    member_add(initiative=second, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    assert Membership.objects.filter(user=engineer, left_at__isnull=True).count() == 2


@pytest.mark.parametrize("who", ["other_pm", "engineer", "scientist", "stakeholder"])
def test_only_accountable_or_admin_add(request, ready_initiative, devops, who):
    # ready_initiative has the scientist and the engineer on its team already.
    user = request.getfixturevalue(who)
    count = ready_initiative.memberships.count()

    with pytest.raises(PermissionDenied):
        member_add(
            initiative=ready_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=user
        )

    assert ready_initiative.memberships.count() == count


def test_cancelled_initiative_refuses_new_members(initiative, pm, engineer):
    decide(initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError) as excinfo:
        member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    assert excinfo.value.code == "final_status"
    assert not initiative.memberships.exists()


def test_data_scientist_cannot_join_in_ops(ops_initiative, pm, admin_user, make_user):
    newcomer = make_user(Role.DATA_SCIENTIST, username="newcomer")
    assert ops_initiative.phase == Phase.OPS

    for user in (pm, admin_user):
        with pytest.raises(ConflictError) as excinfo:
            member_add(
                initiative=ops_initiative,
                member=newcomer,
                role=TeamRole.DATA_SCIENTIST,
                user=user,
            )
        assert excinfo.value.field == "role"

    assert not ops_initiative.memberships.filter(user=newcomer).exists()


def test_engineers_may_still_join_in_ops(ops_initiative, pm, devops):
    membership = member_add(
        initiative=ops_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm
    )

    assert membership.is_active


def test_data_scientist_may_join_in_dev(dev_initiative, pm, make_user):
    newcomer = make_user(Role.DATA_SCIENTIST, username="newcomer")

    membership = member_add(
        initiative=dev_initiative, member=newcomer, role=TeamRole.DATA_SCIENTIST, user=pm
    )

    assert membership.is_active


# member_remove


def _join(initiative, member, role, pm) -> Membership:
    return member_add(initiative=initiative, member=member, role=role, user=pm)


def test_remove_marks_the_membership_left_and_keeps_it(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)
    before = timezone.now()

    removed = member_remove(membership=membership, user=pm, reason="Moved to another team")

    assert removed.pk == membership.pk
    stored = Membership.objects.get(pk=membership.pk)
    assert stored.left_at is not None
    assert stored.left_at >= before
    assert stored.removed_by == pm
    assert stored.leave_reason == "Moved to another team"
    assert not stored.is_active
    assert permissions.active_roles_on(engineer, initiative) == set()


def test_remove_has_a_default_reason(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)

    member_remove(membership=membership, user=pm)

    membership.refresh_from_db()
    assert membership.leave_reason
    assert membership.removed_by == pm


def test_remove_reason_is_cut_to_the_column_length(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)

    member_remove(membership=membership, user=pm, reason="x" * 300)

    membership.refresh_from_db()
    assert membership.leave_reason == "x" * 200


def test_admin_removes_a_member(initiative, pm, admin_user, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)

    member_remove(membership=membership, user=admin_user)

    membership.refresh_from_db()
    assert membership.removed_by == admin_user
    assert not membership.is_active


def test_removing_twice_is_a_conflict(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)
    member_remove(membership=membership, user=pm, reason="First")
    left_at = Membership.objects.get(pk=membership.pk).left_at

    with pytest.raises(ConflictError):
        member_remove(membership=membership, user=pm, reason="Second")

    stored = Membership.objects.get(pk=membership.pk)
    assert stored.left_at == left_at
    assert stored.leave_reason == "First"


@pytest.mark.parametrize("who", ["other_pm", "engineer", "stakeholder"])
def test_only_accountable_or_admin_remove(request, initiative, pm, scientist, who):
    membership = _join(initiative, scientist, TeamRole.DATA_SCIENTIST, pm)
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        member_remove(membership=membership, user=user)

    membership.refresh_from_db()
    assert membership.is_active


def test_member_cannot_remove_themself(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)

    with pytest.raises(PermissionDenied):
        member_remove(membership=membership, user=engineer)

    membership.refresh_from_db()
    assert membership.is_active


def test_cancelled_initiative_refuses_removals(initiative, pm, engineer):
    membership = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)
    decide(initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        member_remove(membership=membership, user=pm)

    membership.refresh_from_db()
    assert membership.is_active


def test_rejoining_after_leaving_adds_a_new_row(initiative, pm, engineer):
    first = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)
    member_remove(membership=first, user=pm)

    second = _join(initiative, engineer, TeamRole.DATA_ENGINEER, pm)

    assert second.pk != first.pk
    assert second.is_active
    rows = initiative.memberships.filter(user=engineer, role=TeamRole.DATA_ENGINEER)
    assert rows.count() == 2
    assert rows.filter(left_at__isnull=True).get() == second
    assert permissions.active_roles_on(engineer, initiative) == {TeamRole.DATA_ENGINEER}


# Entering Ops


def test_entering_ops_makes_data_scientists_leave(dev_initiative, pm, stakeholder, scientist):
    scientist_row = dev_initiative.memberships.get(user=scientist)
    assert scientist_row.is_active

    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    before = timezone.now()
    initiative = decide(dev_initiative, Decision.GO, pm)

    assert initiative.phase == Phase.OPS
    scientist_row.refresh_from_db()
    assert scientist_row.left_at is not None
    assert scientist_row.left_at >= before
    assert scientist_row.removed_by == pm
    assert "Ops" in scientist_row.leave_reason
    assert TeamRole.DATA_SCIENTIST not in permissions.active_roles_on(scientist, initiative)


def test_entering_ops_keeps_engineers(ops_initiative, engineer, devops, scientist):
    engineer_row = ops_initiative.memberships.get(user=engineer)

    assert engineer_row.is_active
    assert engineer_row.removed_by is None
    assert permissions.active_roles_on(engineer, ops_initiative) == {TeamRole.DATA_ENGINEER}
    assert ops_initiative.memberships.filter(user=scientist).count() == 1


def test_entering_ops_keeps_stakeholders_and_devops(dev_initiative, pm, stakeholder, devops):
    _join(dev_initiative, devops, TeamRole.DEVOPS_ENGINEER, pm)
    _join(dev_initiative, stakeholder, TeamRole.STAKEHOLDER, pm)
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)

    initiative = decide(dev_initiative, Decision.GO, pm)

    active = set(initiative.memberships.filter(left_at__isnull=True).values_list("role", flat=True))
    assert active == {TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER, TeamRole.STAKEHOLDER}


def test_data_scientist_may_rejoin_after_recycle_to_dev(ops_initiative, pm, scientist):
    initiative = decide(ops_initiative, Decision.RECYCLE, pm)
    assert initiative.phase == Phase.DEV

    membership = _join(initiative, scientist, TeamRole.DATA_SCIENTIST, pm)

    assert membership.is_active
    assert initiative.memberships.filter(user=scientist).count() == 2
