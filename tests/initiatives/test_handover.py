from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from bizdevops.roles import Role
from initiatives.models import Handover, Initiative, Status, TeamRole
from initiatives.services import initiative_hand_over, initiative_update, member_add
from phases.models import Decision
from tests.factories import decide

pytestmark = pytest.mark.django_db


def _assert_unchanged(initiative: Initiative, accountable: object) -> None:
    initiative.refresh_from_db()
    assert initiative.accountable == accountable
    assert not Handover.objects.filter(initiative=initiative).exists()


def test_hand_over_records_who_whom_why_when(initiative, pm, other_pm):
    before = timezone.now()

    handover = initiative_hand_over(
        initiative=initiative, to=other_pm, reason="  Parental leave  ", user=pm
    )

    after = timezone.now()
    handover.refresh_from_db()
    assert handover.initiative_id == initiative.pk
    assert handover.from_user == pm
    assert handover.to_user == other_pm
    assert handover.reason == "Parental leave"
    assert handover.handed_over_by == pm
    assert before <= handover.at <= after
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    assert list(initiative.handovers.all()) == [handover]


def test_admin_hands_over_on_behalf_of_the_accountable(initiative, pm, other_pm, admin_user):
    handover = initiative_hand_over(
        initiative=initiative, to=other_pm, reason="PM left the company", user=admin_user
    )

    assert handover.from_user == pm
    assert handover.to_user == other_pm
    assert handover.handed_over_by == admin_user
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_reason_is_required(initiative, pm, other_pm, reason):
    with pytest.raises(DomainError) as excinfo:
        initiative_hand_over(initiative=initiative, to=other_pm, reason=reason, user=pm)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "reason"
    _assert_unchanged(initiative, pm)


@pytest.mark.parametrize("who", ["engineer", "scientist", "stakeholder", "admin_user"])
def test_target_must_be_a_program_manager(request, initiative, pm, who):
    target = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        initiative_hand_over(initiative=initiative, to=target, reason="Moving on", user=pm)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "to"
    assert excinfo.value.code == "not_program_manager"
    _assert_unchanged(initiative, pm)


def test_target_must_be_active(initiative, pm, make_user):
    gone = make_user(Role.PROGRAM_MANAGER, username="gone", is_active=False)

    with pytest.raises(DomainError) as excinfo:
        initiative_hand_over(initiative=initiative, to=gone, reason="Moving on", user=pm)

    assert excinfo.value.field == "to"
    _assert_unchanged(initiative, pm)


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_cannot_hand_over_to_the_accountable(request, initiative, pm, who):
    user = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        initiative_hand_over(initiative=initiative, to=pm, reason="No change", user=user)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "to"
    _assert_unchanged(initiative, pm)


@pytest.mark.parametrize("who", ["other_pm", "engineer", "scientist", "stakeholder"])
def test_only_accountable_or_admin_hand_over(request, ready_initiative, pm, other_pm, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        initiative_hand_over(
            initiative=ready_initiative, to=other_pm, reason="Taking over", user=user
        )

    _assert_unchanged(ready_initiative, pm)


def test_cancelled_initiative_refuses_handover(initiative, pm, other_pm):
    decide(initiative, Decision.KILL, pm)
    assert initiative.status == Status.CANCELLED

    with pytest.raises(ConflictError) as excinfo:
        initiative_hand_over(initiative=initiative, to=other_pm, reason="Too late", user=pm)

    assert excinfo.value.code == "final_status"
    _assert_unchanged(initiative, pm)


def test_retired_initiative_refuses_handover(ops_initiative, pm, other_pm, admin_user):
    decide(ops_initiative, Decision.RETIRE, pm)
    assert ops_initiative.status == Status.RETIRED

    with pytest.raises(ConflictError):
        initiative_hand_over(
            initiative=ops_initiative, to=other_pm, reason="Too late", user=admin_user
        )

    _assert_unchanged(ops_initiative, pm)


def test_on_hold_initiative_may_be_handed_over(initiative, pm, other_pm):
    decide(initiative, Decision.HOLD, pm)

    initiative_hand_over(initiative=initiative, to=other_pm, reason="Cover the hold", user=pm)

    initiative.refresh_from_db()
    assert initiative.accountable == other_pm


def test_handover_row_cannot_be_changed(initiative, pm, other_pm):
    handover = initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    handover.reason = "Rewritten history"
    with pytest.raises(PermissionError):
        handover.save()

    handover.refresh_from_db()
    assert handover.reason == "Leave"


def test_handover_row_cannot_be_deleted(initiative, pm, other_pm):
    handover = initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    with pytest.raises(PermissionError):
        handover.delete()

    assert Handover.objects.filter(pk=handover.pk).exists()


def test_handover_row_fetched_again_cannot_be_changed(initiative, pm, other_pm):
    initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)
    handover = Handover.objects.get(initiative=initiative)

    handover.to_user = pm
    with pytest.raises(PermissionError):
        handover.save(update_fields=["to_user"])

    assert Handover.objects.get(pk=handover.pk).to_user == other_pm


@pytest.mark.postgres
def test_database_refuses_to_rewrite_handovers(initiative, pm, other_pm):
    handover = initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    with pytest.raises(IntegrityError), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).update(reason="Rewritten")
    with pytest.raises(IntegrityError), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).delete()

    handover.refresh_from_db()
    assert handover.reason == "Leave"


def test_after_handover_old_pm_cannot_manage_and_new_pm_can(initiative, pm, other_pm, engineer):
    initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    with pytest.raises(PermissionDenied):
        initiative_update(initiative=initiative, user=pm, title="Old owner's edit")
    with pytest.raises(PermissionDenied):
        member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm)

    initiative_update(initiative=initiative, user=other_pm, title="New owner's edit")
    member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=other_pm)

    initiative.refresh_from_db()
    assert initiative.title == "New owner's edit"
    assert initiative.memberships.get().added_by == other_pm


def test_old_pm_cannot_hand_over_again_with_a_stale_copy(initiative, pm, other_pm, make_user):
    third = make_user(Role.PROGRAM_MANAGER, username="pm3")
    initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)

    # `initiative` still names pm as accountable in memory; the service must use the row.
    with pytest.raises(PermissionDenied):
        initiative_hand_over(initiative=initiative, to=third, reason="Again", user=pm)

    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    assert initiative.handovers.count() == 1


def test_handovers_chain_and_keep_the_history(initiative, pm, other_pm, make_user):
    third = make_user(Role.PROGRAM_MANAGER, username="pm3")

    initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)
    initiative_hand_over(initiative=initiative, to=third, reason="Reorg", user=other_pm)
    initiative_hand_over(initiative=initiative, to=pm, reason="Back from leave", user=third)

    chain = [(h.from_user, h.to_user, h.handed_over_by) for h in initiative.handovers.all()]
    assert chain == [(pm, other_pm, pm), (other_pm, third, other_pm), (third, pm, third)]
    initiative.refresh_from_db()
    assert initiative.accountable == pm
