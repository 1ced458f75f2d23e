from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from bizdevops.roles import Role
from initiatives.models import Initiative, Iteration, Phase, TeamRole
from initiatives.services import (
    initiative_hand_over,
    iteration_add,
    iteration_record_feedback,
    member_add,
    member_remove,
)
from phases.checks import run_check
from phases.models import Decision
from tests.factories import BusinessUnitFactory, decide, make_initiative, pass_biz_gate

pytestmark = pytest.mark.django_db


def _add(initiative, user, tried="Logistic regression baseline", **kwargs) -> Iteration:
    return iteration_add(initiative=initiative, user=user, tried=tried, **kwargs)


# iteration_add


def test_iteration_is_recorded_in_dev(dev_initiative, pm):
    before = timezone.now()

    iteration = _add(dev_initiative, pm, tried="  Gradient boosting  ")

    iteration.refresh_from_db()
    assert iteration.initiative_id == dev_initiative.pk
    assert iteration.number == 1
    assert iteration.tried == "Gradient boosting"
    assert iteration.happened_on == timezone.localdate()
    assert iteration.recorded_by == pm
    assert iteration.business_feedback == ""
    assert iteration.feedback_at is None
    assert iteration.created_at >= before


def test_feedback_given_with_the_iteration_is_stamped(dev_initiative, pm):
    before = timezone.now()

    iteration = _add(dev_initiative, pm, business_feedback="  Looks promising  ")

    assert iteration.business_feedback == "Looks promising"
    assert iteration.feedback_at is not None
    assert iteration.feedback_at >= before


def test_blank_feedback_with_the_iteration_is_no_feedback(dev_initiative, pm):
    iteration = _add(dev_initiative, pm, business_feedback="   ")

    assert iteration.business_feedback == ""
    assert iteration.feedback_at is None


def test_iterations_are_numbered_per_initiative(dev_initiative, pm, unit, stakeholder, make_user):
    numbers = [_add(dev_initiative, pm, tried=f"Attempt {n}").number for n in range(3)]
    assert numbers == [1, 2, 3]

    second = make_initiative(pm, unit, title="Second")
    second = pass_biz_gate(
        second,
        pm=pm,
        stakeholder=stakeholder,
        scientist=make_user(Role.DATA_SCIENTIST, username="s2"),
        engineer=make_user(Role.DATA_ENGINEER, username="e2"),
    )
    second = decide(second, Decision.GO, pm)

    assert _add(second, pm).number == 1
    assert _add(dev_initiative, pm).number == 4
    assert list(second.iterations.values_list("number", flat=True)) == [1]


def test_iteration_in_biz_is_a_conflict(initiative, pm):
    assert initiative.phase == Phase.BIZ

    with pytest.raises(ConflictError) as excinfo:
        _add(initiative, pm)

    assert excinfo.value.code == "wrong_phase"
    assert not initiative.iterations.exists()


def test_iteration_in_ops_is_a_conflict(ops_initiative, pm):
    count = ops_initiative.iterations.count()

    with pytest.raises(ConflictError) as excinfo:
        _add(ops_initiative, pm)

    assert excinfo.value.code == "wrong_phase"
    assert ops_initiative.iterations.count() == count


def test_iteration_after_recycle_to_biz_is_a_conflict(dev_initiative, pm):
    initiative = decide(dev_initiative, Decision.RECYCLE, pm)

    with pytest.raises(ConflictError):
        _add(initiative, pm)


def test_cancelled_initiative_refuses_iterations(dev_initiative, pm):
    decide(dev_initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError) as excinfo:
        _add(dev_initiative, pm)

    assert excinfo.value.code == "final_status"
    assert not dev_initiative.iterations.exists()


def test_future_date_is_refused(dev_initiative, pm):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)

    with pytest.raises(DomainError) as excinfo:
        _add(dev_initiative, pm, happened_on=tomorrow)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "happened_on"
    assert not dev_initiative.iterations.exists()


@pytest.mark.parametrize("days_ago", [0, 1, 30])
def test_today_or_past_dates_are_kept(dev_initiative, pm, days_ago):
    day = timezone.localdate() - dt.timedelta(days=days_ago)

    iteration = _add(dev_initiative, pm, happened_on=day)

    iteration.refresh_from_db()
    assert iteration.happened_on == day


@pytest.mark.parametrize("tried", ["", "   ", "\n"])
def test_what_was_tried_is_required(dev_initiative, pm, tried):
    with pytest.raises(DomainError) as excinfo:
        _add(dev_initiative, pm, tried=tried)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "tried"
    assert not dev_initiative.iterations.exists()


@pytest.mark.parametrize("who", ["pm", "admin_user", "scientist", "engineer"])
def test_accountable_admin_and_team_builders_record(request, dev_initiative, who):
    # The scientist and the engineer are on dev_initiative's team.
    user = request.getfixturevalue(who)

    iteration = _add(dev_initiative, user)

    assert iteration.recorded_by == user


def test_devops_engineer_on_the_team_records(dev_initiative, pm, devops):
    member_add(initiative=dev_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm)

    assert _add(dev_initiative, devops).recorded_by == devops


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "devops"])
def test_others_may_not_record(request, dev_initiative, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        _add(dev_initiative, user)

    assert not dev_initiative.iterations.exists()


def test_stakeholder_on_the_team_may_not_record(dev_initiative, pm, stakeholder):
    member_add(initiative=dev_initiative, member=stakeholder, role=TeamRole.STAKEHOLDER, user=pm)

    with pytest.raises(PermissionDenied):
        _add(dev_initiative, stakeholder)


def test_scientist_not_on_this_team_may_not_record(dev_initiative, make_user):
    outsider = make_user(Role.DATA_SCIENTIST, username="outsider")

    with pytest.raises(PermissionDenied):
        _add(dev_initiative, outsider)


def test_scientist_who_left_the_team_may_not_record(dev_initiative, pm, scientist):
    member_remove(membership=dev_initiative.memberships.get(user=scientist), user=pm)

    with pytest.raises(PermissionDenied):
        _add(dev_initiative, scientist)

    assert not dev_initiative.iterations.exists()


# iteration_record_feedback


@pytest.fixture
def iteration(dev_initiative, scientist) -> Iteration:
    return _add(dev_initiative, scientist, tried="Random forest, 20 features")


def test_unit_stakeholder_records_feedback(iteration, stakeholder, dev_initiative):
    assert not run_check("iteration_with_feedback", dev_initiative).satisfied
    before = timezone.now()

    result = iteration_record_feedback(
        iteration=iteration, business_feedback="  Too many false alarms.  ", user=stakeholder
    )

    assert result.pk == iteration.pk
    iteration.refresh_from_db()
    assert iteration.business_feedback == "Too many false alarms."
    assert iteration.feedback_at is not None
    assert iteration.feedback_at >= before
    assert run_check("iteration_with_feedback", dev_initiative).satisfied


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_and_admin_record_feedback(request, iteration, who):
    user = request.getfixturevalue(who)

    iteration_record_feedback(iteration=iteration, business_feedback="Relayed", user=user)

    iteration.refresh_from_db()
    assert iteration.business_feedback == "Relayed"


def test_stakeholder_of_another_unit_may_not(iteration, make_user):
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="marketing")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)

    with pytest.raises(PermissionDenied):
        iteration_record_feedback(iteration=iteration, business_feedback="Ship it", user=outsider)

    iteration.refresh_from_db()
    assert iteration.business_feedback == ""
    assert iteration.feedback_at is None


def test_stakeholder_on_the_team_records_feedback(iteration, dev_initiative, pm, make_user):
    # Not in the unit, but named on this initiative's team as its stakeholder.
    guest = make_user(Role.BUSINESS_STAKEHOLDER, username="guest")
    member_add(initiative=dev_initiative, member=guest, role=TeamRole.STAKEHOLDER, user=pm)

    iteration_record_feedback(iteration=iteration, business_feedback="Fine", user=guest)

    iteration.refresh_from_db()
    assert iteration.business_feedback == "Fine"


@pytest.mark.parametrize("who", ["scientist", "engineer", "other_pm"])
def test_builders_and_other_pms_may_not_give_business_feedback(request, iteration, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        iteration_record_feedback(iteration=iteration, business_feedback="Great!", user=user)

    iteration.refresh_from_db()
    assert iteration.business_feedback == ""


@pytest.mark.parametrize("feedback", ["", "   ", None])
def test_empty_feedback_is_refused(iteration, stakeholder, feedback):
    with pytest.raises(DomainError) as excinfo:
        iteration_record_feedback(iteration=iteration, business_feedback=feedback, user=stakeholder)

    assert type(excinfo.value) is DomainError
    assert excinfo.value.field == "business_feedback"
    iteration.refresh_from_db()
    assert iteration.business_feedback == ""
    assert iteration.feedback_at is None


def test_feedback_on_a_cancelled_initiative_is_refused(iteration, dev_initiative, pm, stakeholder):
    decide(dev_initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        iteration_record_feedback(iteration=iteration, business_feedback="Late", user=stakeholder)

    iteration.refresh_from_db()
    assert iteration.business_feedback == ""


def test_iteration_add_checks_the_stored_status_not_a_stale_copy(dev_initiative, pm):
    stale = Initiative.objects.get(pk=dev_initiative.pk)
    decide(dev_initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        _add(stale, pm)

    assert not dev_initiative.iterations.exists()


def test_iteration_add_checks_the_stored_owner_not_a_stale_copy(dev_initiative, pm, other_pm):
    stale = Initiative.objects.get(pk=dev_initiative.pk)
    initiative_hand_over(initiative=dev_initiative, to=other_pm, reason="Leave", user=pm)

    with pytest.raises(PermissionDenied):
        _add(stale, pm)

    assert not dev_initiative.iterations.exists()


def test_feedback_is_given_in_dev_only(iteration, dev_initiative, pm, stakeholder):
    decide(dev_initiative, Decision.RECYCLE, pm)
    with pytest.raises(ConflictError) as excinfo:
        iteration_record_feedback(iteration=iteration, business_feedback="Late", user=stakeholder)
    assert excinfo.value.code == "wrong_phase"
    iteration.refresh_from_db()
    assert iteration.business_feedback == ""
