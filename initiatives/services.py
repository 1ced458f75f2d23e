"""Every write to initiatives, business units, teams, handovers and iterations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from bizdevops.errors import (
    ConflictError,
    DomainError,
    clean_text,
    reject_unknown,
    require_text,
)
from bizdevops.roles import Role, has_role
from initiatives import permissions
from initiatives.models import (
    TIMEBOX_DEFAULT_WEEKS,
    TIMEBOX_MAX_WEEKS,
    TIMEBOX_MIN_WEEKS,
    BusinessUnit,
    Handover,
    Initiative,
    Iteration,
    Membership,
    Phase,
    TeamRole,
)
from initiatives.people import person_name
from notifications import services as notifications
from notifications.models import Event

if TYPE_CHECKING:
    from django.contrib.auth.models import User

STORY_FIELDS = (
    "business_problem",
    "business_requirements",
    "use_case",
    "algorithm_translation",
    "data_feasibility",
)
EDITABLE_FIELDS = ("title", "business_unit", "dev_timebox_weeks", *STORY_FIELDS)

# The group a person must hold to take a role on a team.
ROLE_FOR_TEAM_ROLE = {
    TeamRole.DATA_SCIENTIST: Role.DATA_SCIENTIST,
    TeamRole.DATA_ENGINEER: Role.DATA_ENGINEER,
    TeamRole.DEVOPS_ENGINEER: Role.DEVOPS_ENGINEER,
    TeamRole.STAKEHOLDER: Role.BUSINESS_STAKEHOLDER,
}


def initiative_lock(initiative: Initiative) -> Initiative:
    """Re-read the initiative under a row lock. Every write that depends on an initiative's
    phase, status, owner or team calls this first, so that writes on one initiative are
    serialised and none works on a stale copy (two decisions at once cannot both apply)."""
    return Initiative.objects.select_for_update().get(pk=initiative.pk)


_lock = initiative_lock


def require_open(initiative: Initiative) -> None:
    """A cancelled or retired initiative is final: nothing of it changes any more."""
    if initiative.is_final:
        raise ConflictError(
            f"{initiative.key} is {initiative.get_status_display().lower()}; it can no longer "
            "be changed.",
            code="final_status",
        )


def _story_text(field: str, value: str | None) -> str:
    label = field.replace("_", " ").capitalize()  # "business_problem": "Business problem"
    return clean_text(value, field, label, multiline=True)


def _check_timebox(weeks: int) -> None:
    if not TIMEBOX_MIN_WEEKS <= weeks <= TIMEBOX_MAX_WEEKS:
        raise DomainError(
            f"The Dev timebox must be between {TIMEBOX_MIN_WEEKS} and {TIMEBOX_MAX_WEEKS} weeks.",
            field="dev_timebox_weeks",
        )


def _check_program_manager(user: User, field: str) -> None:
    if not user.is_active or not has_role(user, Role.PROGRAM_MANAGER):
        raise DomainError(
            f"{person_name(user)} is not an active program manager; only a program manager "
            "can be accountable.",
            field=field,
            code="not_program_manager",
        )


@transaction.atomic
def business_unit_save(
    *,
    user: User,
    name: str,
    description: str = "",
    stakeholders: Iterable[User] | None = None,
    unit: BusinessUnit | None = None,
) -> BusinessUnit:
    """Create or update a business unit (admins only). Stakeholders must hold the role."""
    permissions.can_manage_units.check(user)
    name = require_text(name, "name", "Name")
    description = clean_text(description, "description", "Description", multiline=True)
    clash = BusinessUnit.objects.filter(name__iexact=name)
    if unit is not None:
        clash = clash.exclude(pk=unit.pk)
    if clash.exists():
        raise DomainError(f"A business unit named {name!r} exists already.", field="name")
    people = list(stakeholders) if stakeholders is not None else None
    for person in people or []:
        if not has_role(person, Role.BUSINESS_STAKEHOLDER):
            raise DomainError(
                f"{person_name(person)} is not a business stakeholder.", field="stakeholders"
            )
    if unit is None:
        unit = BusinessUnit.objects.create(name=name, description=description)
    else:
        unit.name, unit.description = name, description
        unit.save(update_fields=["name", "description"])
    if people is not None:
        unit.stakeholders.set(people)
    return unit


@transaction.atomic
def initiative_create(
    *,
    user: User,
    title: str,
    business_unit: BusinessUnit,
    accountable: User | None = None,
    dev_timebox_weeks: int = TIMEBOX_DEFAULT_WEEKS,
    **story: str,
) -> Initiative:
    """Create an initiative in Biz. The creator is accountable unless an admin names another
    program manager."""
    permissions.can_create_initiative.check(user)
    reject_unknown(story, STORY_FIELDS)
    if accountable is None or accountable.pk == user.pk:
        accountable = user
    else:
        permissions.can_name_accountable.check(user)
    _check_program_manager(accountable, "accountable")
    _check_timebox(dev_timebox_weeks)
    title = require_text(title, "title", "Title")
    story = {field: _story_text(field, value) for field, value in story.items()}
    initiative = Initiative.objects.create(
        title=title,
        business_unit=business_unit,
        accountable=accountable,
        dev_timebox_weeks=dev_timebox_weeks,
        created_by=user,
        **story,
    )
    return initiative


@transaction.atomic
def initiative_update(*, initiative: Initiative, user: User, **changes: Any) -> Initiative:
    """Edit the title, business unit, timebox and story. Accountability is not a field here:
    it changes only by `initiative_hand_over`."""
    if "accountable" in changes:
        raise DomainError(
            "The accountable program manager changes only by a handover.", field="accountable"
        )
    reject_unknown(changes, EDITABLE_FIELDS)
    initiative = _lock(initiative)
    permissions.can_edit.check(user, initiative)
    require_open(initiative)
    if "title" in changes:
        changes["title"] = require_text(changes["title"], "title", "Title")
    if "dev_timebox_weeks" in changes:
        _check_timebox(changes["dev_timebox_weeks"])
    for field in STORY_FIELDS:
        if field in changes:
            changes[field] = _story_text(field, changes[field])
    for field, value in changes.items():
        setattr(initiative, field, value)
    initiative.save(update_fields=[*changes, "updated_at"])
    return initiative


@transaction.atomic
def initiative_hand_over(*, initiative: Initiative, to: User, reason: str, user: User) -> Handover:
    """Move accountability to another program manager, recording from, to, why, who, when."""
    reason = require_text(reason, "reason", "A reason", multiline=True)
    initiative = _lock(initiative)
    permissions.can_hand_over.check(user, initiative)
    require_open(initiative)
    if to.pk == initiative.accountable_id:
        raise DomainError(f"{person_name(to)} is accountable already.", field="to")
    _check_program_manager(to, "to")
    handover = Handover.objects.create(
        initiative=initiative,
        from_user_id=initiative.accountable_id,
        to_user=to,
        reason=reason,
        handed_over_by=user,
    )
    # Compare-and-set on the old owner as a second guard besides the row lock.
    changed = Initiative.objects.filter(
        pk=initiative.pk, accountable_id=handover.from_user_id
    ).update(accountable=to, updated_at=timezone.now())
    if changed != 1:
        raise ConflictError("The initiative changed meanwhile; try again.")
    notifications.event_publish(
        event=Event.INITIATIVE_HANDED_OVER,
        payload={
            "initiative": initiative.key,
            "from": initiative.accountable.get_username(),
            "to": to.get_username(),
            "reason": reason,
            "by": user.get_username(),
        },
    )
    return handover


@transaction.atomic
def member_add(*, initiative: Initiative, member: User, role: str, user: User) -> Membership:
    initiative = _lock(initiative)
    permissions.can_staff.check(user, initiative)
    require_open(initiative)
    try:
        team_role = TeamRole(role)
    except ValueError:
        raise DomainError(f"{role!r} is not a team role.", field="role") from None
    if not member.is_active or not has_role(member, ROLE_FOR_TEAM_ROLE[team_role]):
        raise DomainError(
            f"{person_name(member)} does not hold the role "
            f"{ROLE_FOR_TEAM_ROLE[team_role].label.lower()}.",
            field="user",
        )
    if team_role == TeamRole.DATA_SCIENTIST and initiative.phase == Phase.OPS:
        raise ConflictError(
            "Data scientists are not part of the team in Ops; recycle to Dev to involve them.",
            field="role",
        )
    if initiative.memberships.filter(user=member, role=team_role, left_at__isnull=True).exists():
        raise ConflictError(
            f"{person_name(member)} is on the team as {team_role.label.lower()} already.",
            field="user",
        )
    return Membership.objects.create(
        initiative=initiative, user=member, role=team_role, added_by=user
    )


@transaction.atomic
def member_remove(
    *, membership: Membership, user: User, reason: str = "Removed from the team"
) -> Membership:
    initiative = _lock(membership.initiative)
    permissions.can_staff.check(user, initiative)
    require_open(initiative)
    reason = clean_text(reason, "reason", "A reason")
    changed = Membership.objects.filter(pk=membership.pk, left_at__isnull=True).update(
        left_at=timezone.now(), removed_by=user, leave_reason=reason[:200]
    )
    if changed != 1:
        raise ConflictError("This person has left the team already.")
    membership.refresh_from_db()
    return membership


@transaction.atomic
def iteration_add(
    *,
    initiative: Initiative,
    user: User,
    tried: str,
    happened_on: dt.date | None = None,
    business_feedback: str = "",
) -> Iteration:
    """Record a Dev iteration; numbers count up per initiative under the row lock."""
    initiative = _lock(initiative)
    permissions.can_record_iteration.check(user, initiative)
    require_open(initiative)
    if initiative.phase != Phase.DEV:
        raise ConflictError("Iterations are recorded in Dev.", code="wrong_phase")
    tried = require_text(tried, "tried", "What was tried", multiline=True)
    happened_on = happened_on or timezone.localdate()
    if happened_on > timezone.localdate():
        raise DomainError("An iteration cannot happen in the future.", field="happened_on")
    last = initiative.iterations.order_by("-number").values_list("number", flat=True).first()
    feedback = clean_text(
        business_feedback, "business_feedback", "Business feedback", multiline=True
    )
    return Iteration.objects.create(
        initiative=initiative,
        number=(last or 0) + 1,
        tried=tried,
        business_feedback=feedback,
        feedback_at=timezone.now() if feedback else None,
        happened_on=happened_on,
        recorded_by=user,
    )


@transaction.atomic
def iteration_record_feedback(
    *, iteration: Iteration, business_feedback: str, user: User
) -> Iteration:
    """The business's answer to an iteration (the feedback loop of Dev)."""
    initiative = _lock(iteration.initiative)
    permissions.can_give_feedback.check(user, initiative)
    require_open(initiative)
    if initiative.phase != Phase.DEV:
        raise ConflictError("Business feedback on iterations is given in Dev.", code="wrong_phase")
    iteration.business_feedback = require_text(
        business_feedback, "business_feedback", "Business feedback", multiline=True
    )
    iteration.feedback_at = timezone.now()
    iteration.save(update_fields=["business_feedback", "feedback_at"])
    return iteration
