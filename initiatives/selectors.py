"""Reads shared by pages, the API and tasks, and the access doors of initiatives, business
units, team members and iterations: `..._get(..., user)` answers 404 for what the user may not
see, `..._visible_to(user)` lists only what they may see. No view reads these models itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from initiatives import permissions
from initiatives.models import (
    FINAL_STATUSES,
    KEY_PREFIX,
    BusinessUnit,
    Initiative,
    Iteration,
    Membership,
    Phase,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser


def parse_key(key: str) -> int | None:
    """`BDO-12` -> 12; anything else -> None."""
    if not key.upper().startswith(KEY_PREFIX):
        return None
    number = key[len(KEY_PREFIX) :]
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        return None
    return int(number)


def limit_to_visible(queryset: QuerySet[Any], user: AnyUser, path: str = "") -> QuerySet[Any]:
    """The rows of `queryset` whose initiative the user may see; `path` leads from its model
    to the initiative (e.g. "kpi__initiative__"). For the selectors of the apps above this
    one (KPIs, jobs, runs), which offer their own doors."""
    if permissions.sees_portfolio(user):
        return queryset
    if permissions.sees_own_units(user):
        return queryset.filter(**{f"{path}business_unit__stakeholders": user.pk})
    return queryset.none()


def _listed() -> QuerySet[Initiative]:
    """Initiatives with what a card or list row shows, in a constant number of queries."""
    return Initiative.objects.select_related("business_unit", "accountable").annotate(
        kpi_count=Count("kpis", distinct=True)
    )


def initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return limit_to_visible(_listed(), user)


def open_initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return initiatives_visible_to(user).exclude(status__in=FINAL_STATUSES)


def closed_initiatives_visible_to(user: AnyUser) -> QuerySet[Initiative]:
    return initiatives_visible_to(user).filter(status__in=FINAL_STATUSES).order_by("-updated_at")


def initiative_get(key: str, user: AnyUser) -> Initiative:
    """The initiative with this key as the user may see it, else 404 (not 403: a page must
    not reveal what exists elsewhere)."""
    pk = parse_key(key)
    if pk is None:
        raise Http404(f"No initiative {key}.")
    try:
        return initiatives_visible_to(user).get(pk=pk)
    except Initiative.DoesNotExist:
        raise Http404(f"No initiative {key}.") from None


def my_initiatives(user: AnyUser) -> QuerySet[Initiative]:
    """Open initiatives the user is accountable for or on the team of."""
    mine = Initiative.objects.filter(
        Q(accountable_id=user.pk)
        | Q(memberships__user_id=user.pk, memberships__left_at__isnull=True)
    ).values("pk")
    return open_initiatives_visible_to(user).filter(pk__in=mine).order_by("phase", "id")


# Board cards --------------------------------------------------------------------------------

CardDecorator = Callable[[list[Initiative]], None]
_card_decorators: list[CardDecorator] = []


def decorates_cards(decorator: CardDecorator) -> CardDecorator:
    """Register a function that adds attributes to the initiatives of a board before it is
    shown (the apps above add, say, each card's KPI health), in one pass for all cards."""
    if decorator not in _card_decorators:
        _card_decorators.append(decorator)
    return decorator


def by_phase(initiatives: QuerySet[Initiative]) -> list[tuple[Phase, list[Initiative]]]:
    """Board columns: one list per phase, in phase order, the cards decorated."""
    rows = list(initiatives)
    for decorate in _card_decorators:
        decorate(rows)
    return [(phase, [i for i in rows if i.phase == phase]) for phase in Phase]


# Team, iterations, business units -------------------------------------------------------------


def team(initiative: Initiative) -> list[Membership]:
    return list(
        initiative.memberships.filter(left_at__isnull=True)
        .select_related("user")
        .order_by("role", "user__username")
    )


def member_get(initiative: Initiative, member_id: int) -> Membership:
    """A current member of an initiative the caller fetched through `initiative_get`."""
    try:
        return initiative.memberships.select_related("user").get(pk=member_id, left_at__isnull=True)
    except Membership.DoesNotExist:
        raise Http404("No such member of the team.") from None


def iterations(initiative: Initiative) -> list[Iteration]:
    return list(initiative.iterations.select_related("recorded_by").order_by("-number"))


def iteration_get(initiative: Initiative, number: int) -> Iteration:
    """An iteration of an initiative the caller fetched through `initiative_get`."""
    try:
        return initiative.iterations.get(number=number)
    except Iteration.DoesNotExist:
        raise Http404(f"{initiative.key} has no iteration {number}.") from None


def team_roles_of(user: AnyUser) -> dict[int, set[str]]:
    """The user's active team roles per initiative id, in one query (for lists that show
    per-initiative actions)."""
    roles: dict[int, set[str]] = {}
    if not user.is_authenticated:
        return roles
    rows = Membership.objects.filter(user_id=user.pk, left_at__isnull=True).values_list(
        "initiative_id", "role"
    )
    for initiative_id, role in rows:
        roles.setdefault(initiative_id, set()).add(role)
    return roles


def business_units_visible_to(user: AnyUser) -> QuerySet[BusinessUnit]:
    """The whole list for the portfolio roles; a stakeholder's own units; none without a
    role."""
    units = BusinessUnit.objects.order_by("name")
    if permissions.sees_portfolio(user):
        return units
    if permissions.sees_own_units(user):
        return units.filter(stakeholders=user.pk)
    return units.none()


def business_unit_get(pk: int, user: AnyUser) -> BusinessUnit:
    try:
        return business_units_visible_to(user).get(pk=pk)
    except BusinessUnit.DoesNotExist:
        raise Http404("No such business unit.") from None
