"""Who may tick gate criteria and record decisions: rules asked by the gate panel, the API
and the services alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bizdevops.permissions import Rule
from initiatives import permissions as initiative_permissions
from phases.models import CriterionKind, TickPolicy

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from initiatives.models import Initiative
    from phases.models import Criterion

    AnyUser = User | AnonymousUser


can_decide = Rule(
    initiative_permissions.manages,
    "Only the accountable program manager or an admin decides.",
)


can_ask = Rule(
    initiative_permissions.manages,
    "Only the accountable program manager or an admin asks the team.",
)


def tick_rights(user: AnyUser, initiative: Initiative) -> frozenset[TickPolicy]:
    """The tick policies a user satisfies on an initiative (computed once per page)."""
    if not user.is_authenticated:
        return frozenset()
    rights = set()
    # Business sign-offs only by a stakeholder of the initiative's unit (not even an admin:
    # the sign-off is the business's word).
    if initiative_permissions.is_unit_stakeholder(user, initiative.business_unit):
        rights.add(TickPolicy.UNIT_STAKEHOLDER)
    if initiative_permissions.manages(user, initiative) or initiative_permissions.active_roles_on(
        user, initiative
    ):
        rights.add(TickPolicy.TEAM)
    return frozenset(rights)


def _ticks(
    user: AnyUser,
    initiative: Initiative,
    criterion: Criterion,
    rights: frozenset[TickPolicy] | None = None,
) -> bool:
    if criterion.kind != CriterionKind.MANUAL:
        return False
    if rights is None:
        rights = tick_rights(user, initiative)
    return TickPolicy(criterion.tick_policy) in rights


can_tick = Rule(
    _ticks,
    lambda initiative, criterion, *rest: (
        f"You may not tick '{criterion.title}' on {initiative.key}."
    ),
)
