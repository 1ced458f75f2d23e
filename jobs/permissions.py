"""Who may configure data sources, register and operate jobs, and start runs: rules asked
by the Ops pages, the API and the services alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bizdevops.permissions import Rule
from bizdevops.roles import Role, has_role, is_admin
from initiatives.models import ENGINEER_ROLES
from initiatives.permissions import is_accountable, is_engineer_on
from initiatives.selectors import team_roles_of

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from initiatives.models import Initiative

    AnyUser = User | AnonymousUser


def operates(user: AnyUser, initiative: Initiative) -> bool:
    """Admins, and the data or devops engineers on the initiative's active team."""
    return is_admin(user) or is_engineer_on(user, initiative)


def operator_of(user: AnyUser) -> Callable[[Initiative], bool]:
    """`operates` for many initiatives with one query (lists such as the Ops page)."""
    if is_admin(user):
        return lambda initiative: True
    roles = team_roles_of(user)
    return lambda initiative: bool(roles.get(initiative.pk, set()) & ENGINEER_ROLES)


def _runs(user: AnyUser, initiative: Initiative) -> bool:
    return operates(user, initiative) or is_accountable(user, initiative)


def picks_data_sources(user: AnyUser) -> bool:
    """Who may choose a data source for a job (by name; its URL stays hidden)."""
    return (
        is_admin(user) or has_role(user, Role.DATA_ENGINEER) or has_role(user, Role.DEVOPS_ENGINEER)
    )


can_manage_data_sources = Rule(lambda user: is_admin(user), "Only admins manage data sources.")
can_list_data_sources = Rule(lambda user: is_admin(user), "Only admins see data sources.")
can_register_job = Rule(operates, "Only data or devops engineers of the team register jobs.")
can_operate = Rule(operates, "Only data or devops engineers of the team operate jobs.")
can_run = Rule(_runs, "Only the team's engineers or the accountable PM start runs.")
