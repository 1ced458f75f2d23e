"""Who may define KPIs and push their values: rules asked by pages, the API and services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bizdevops.permissions import Rule
from bizdevops.roles import is_admin
from initiatives.permissions import is_engineer_on, manages

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from initiatives.models import Initiative

    AnyUser = User | AnonymousUser


def _defines(user: AnyUser, initiative: Initiative) -> bool:
    """The accountable PM, admins, and the team's data or devops engineers."""
    return manages(user, initiative) or is_engineer_on(user, initiative)


def _pushes(user: AnyUser, initiative: Initiative) -> bool:
    return is_admin(user) or is_engineer_on(user, initiative)


can_define_kpi = Rule(_defines, "You may not define KPIs for this initiative.")
can_change_kpi = Rule(_defines, "You may not change KPIs of this initiative.")
can_push_measurements = Rule(
    _pushes, "Only admins and the team's data or devops engineers push values."
)
