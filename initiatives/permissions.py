"""Who may see and do what with initiatives, their teams and iterations: rules that views ask
(to show or hide an action) and services check (to enforce it), each with its refusal text.

Seeing: admins and the delivery roles (program managers, data scientists, data and devops
engineers) see the whole portfolio; a business stakeholder sees the initiatives of the
business units they belong to; a user with no role sees none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bizdevops.permissions import Rule
from bizdevops.roles import Role, has_role, is_admin, role_names

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from initiatives.models import BusinessUnit, Initiative

    AnyUser = User | AnonymousUser

PORTFOLIO_ROLES = frozenset(
    {
        Role.PROGRAM_MANAGER.value,
        Role.DATA_SCIENTIST.value,
        Role.DATA_ENGINEER.value,
        Role.DEVOPS_ENGINEER.value,
    }
)


def sees_portfolio(user: AnyUser) -> bool:
    """Every initiative (and its KPIs and jobs) is visible to this user."""
    return is_admin(user) or bool(role_names(user) & PORTFOLIO_ROLES)


def sees_own_units(user: AnyUser) -> bool:
    """Only the initiatives of the user's business units are visible (a stakeholder)."""
    return not sees_portfolio(user) and has_role(user, Role.BUSINESS_STAKEHOLDER)


def is_accountable(user: AnyUser, initiative: Initiative) -> bool:
    return user.is_authenticated and initiative.accountable_id == user.pk


def manages(user: AnyUser, initiative: Initiative) -> bool:
    """The accountable program manager or an admin."""
    return is_admin(user) or is_accountable(user, initiative)


def active_roles_on(user: AnyUser, initiative: Initiative) -> set[str]:
    """The user's team roles on this initiative now (one query)."""
    if not user.is_authenticated:
        return set()
    return set(
        initiative.memberships.filter(user_id=user.pk, left_at__isnull=True).values_list(
            "role", flat=True
        )
    )


def is_engineer_on(user: AnyUser, initiative: Initiative) -> bool:
    """A data or devops engineer on the initiative's active team."""
    from initiatives.models import ENGINEER_ROLES

    return bool(active_roles_on(user, initiative) & ENGINEER_ROLES)


def is_unit_stakeholder(user: AnyUser, unit: BusinessUnit) -> bool:
    return (
        user.is_authenticated
        and has_role(user, Role.BUSINESS_STAKEHOLDER)
        and unit.stakeholders.filter(pk=user.pk).exists()
    )


def _records_iterations(user: AnyUser, initiative: Initiative) -> bool:
    from initiatives.models import BUILDER_ROLES

    return manages(user, initiative) or bool(active_roles_on(user, initiative) & BUILDER_ROLES)


def _gives_feedback(user: AnyUser, initiative: Initiative) -> bool:
    from initiatives.models import TeamRole

    return (
        manages(user, initiative)
        or is_unit_stakeholder(user, initiative.business_unit)
        or TeamRole.STAKEHOLDER in active_roles_on(user, initiative)
    )


_MANAGER = "Only the accountable program manager or an admin"

can_manage_units = Rule(lambda user: is_admin(user), "Only admins manage business units.")
can_create_initiative = Rule(
    lambda user: is_admin(user) or has_role(user, Role.PROGRAM_MANAGER),
    "Only program managers and admins create initiatives.",
)
can_name_accountable = Rule(
    lambda user: is_admin(user), "Only an admin may make someone else accountable."
)
can_edit = Rule(manages, f"{_MANAGER} edits this.")
can_hand_over = Rule(manages, f"{_MANAGER} hands over.")
can_staff = Rule(manages, f"{_MANAGER} staffs the team.")
can_record_iteration = Rule(
    _records_iterations,
    "Only the accountable program manager, an admin or the team records iterations.",
)
can_give_feedback = Rule(
    _gives_feedback,
    "Only the unit's stakeholders, the accountable program manager or an admin record "
    "business feedback.",
)
