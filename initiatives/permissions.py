"""Who may do what: pure predicates shared by services (which enforce them) and pages
(which only use them to hide what a user may not do)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from initiatives.roles import Role, has_role, is_admin, role_names

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from initiatives.models import BusinessUnit, Initiative

    AnyUser = User | AnonymousUser


def sees_only_own_units(user: AnyUser) -> bool:
    """A user whose only role is business stakeholder sees the initiatives (and KPIs, jobs)
    of the business units they belong to, and no others."""
    return (
        user.is_authenticated
        and not is_admin(user)
        and role_names(user) == {Role.BUSINESS_STAKEHOLDER.value}
    )


def can_create_initiative(user: AnyUser) -> bool:
    return is_admin(user) or has_role(user, Role.PROGRAM_MANAGER)


def is_accountable(user: AnyUser, initiative: Initiative) -> bool:
    return user.is_authenticated and initiative.accountable_id == user.pk


def can_manage(user: AnyUser, initiative: Initiative) -> bool:
    """Edit the story, staff the team, hand over, define KPIs, record decisions."""
    return is_admin(user) or is_accountable(user, initiative)


can_decide = can_manage


def active_roles_on(user: AnyUser, initiative: Initiative) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(
        initiative.memberships.filter(user_id=user.pk, left_at__isnull=True).values_list(
            "role", flat=True
        )
    )


def is_unit_stakeholder(user: AnyUser, unit: BusinessUnit) -> bool:
    return (
        user.is_authenticated
        and has_role(user, Role.BUSINESS_STAKEHOLDER)
        and unit.stakeholders.filter(pk=user.pk).exists()
    )


def can_record_iteration(user: AnyUser, initiative: Initiative) -> bool:
    from initiatives.models import TeamRole

    if can_manage(user, initiative):
        return True
    builders = {TeamRole.DATA_SCIENTIST, TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER}
    return bool(active_roles_on(user, initiative) & builders)


def can_give_feedback(user: AnyUser, initiative: Initiative) -> bool:
    from initiatives.models import TeamRole

    return (
        can_manage(user, initiative)
        or is_unit_stakeholder(user, initiative.business_unit)
        or TeamRole.STAKEHOLDER in active_roles_on(user, initiative)
    )
