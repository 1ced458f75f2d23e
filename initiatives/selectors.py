"""Reads shared by pages, the API and tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from initiatives import permissions
from initiatives.models import FINAL_STATUSES, KEY_PREFIX, Initiative, Iteration, Membership, Phase

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def parse_key(key: str) -> int | None:
    """`BDO-12` -> 12; anything else -> None."""
    if not key.upper().startswith(KEY_PREFIX):
        return None
    number = key[len(KEY_PREFIX) :]
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        return None
    return int(number)


def initiative_list() -> QuerySet[Initiative]:
    """Initiatives with what a card or list row shows, in a constant number of queries."""
    return Initiative.objects.select_related("business_unit", "accountable").annotate(
        kpi_count=Count("kpis", distinct=True)
    )


def open_initiatives() -> QuerySet[Initiative]:
    return initiative_list().exclude(status__in=FINAL_STATUSES)


def closed_initiatives() -> QuerySet[Initiative]:
    return initiative_list().filter(status__in=FINAL_STATUSES).order_by("-updated_at")


def visible(queryset: QuerySet[Any], user: User | AnonymousUser, path: str = "") -> QuerySet[Any]:
    """Only what the user may see: a business stakeholder sees their own units' initiatives.
    `path` leads from the queryset's model to the initiative (e.g. "kpi__initiative__")."""
    if permissions.sees_only_own_units(user):
        return queryset.filter(**{f"{path}business_unit__stakeholders": user.pk})
    return queryset


def initiative_get(key: str, user: User | AnonymousUser | None = None) -> Initiative:
    """The initiative with this key as the user may see it, else 404 (not 403: a page must
    not reveal what exists elsewhere). Without a user (internal reads), any initiative."""
    pk = parse_key(key)
    if pk is None:
        raise Http404(f"No initiative {key}.")
    try:
        initiatives = initiative_list() if user is None else visible(initiative_list(), user)
        return initiatives.get(pk=pk)
    except Initiative.DoesNotExist:
        raise Http404(f"No initiative {key}.") from None


def my_initiatives(user: User | AnonymousUser) -> QuerySet[Initiative]:
    """Open initiatives the user is accountable for or on the team of."""
    mine = Initiative.objects.filter(
        Q(accountable_id=user.pk)
        | Q(memberships__user_id=user.pk, memberships__left_at__isnull=True)
    ).values("pk")
    return open_initiatives().filter(pk__in=mine).order_by("phase", "id")


def by_phase(initiatives: QuerySet[Initiative]) -> list[tuple[Phase, list[Initiative]]]:
    """Board columns: one list per phase, in phase order; each card knows its KPI health
    (the worst status of its KPIs, one query for the whole board)."""
    from kpis.selectors import board_health

    rows = list(initiatives)
    health = board_health(rows)
    for initiative in rows:
        initiative.kpi_health = health.get(initiative.pk)  # type: ignore[attr-defined]
    return [(phase, [i for i in rows if i.phase == phase]) for phase in Phase]


def team(initiative: Initiative) -> list[Membership]:
    return list(
        initiative.memberships.filter(left_at__isnull=True)
        .select_related("user")
        .order_by("role", "user__username")
    )


def iterations(initiative: Initiative) -> list[Iteration]:
    return list(initiative.iterations.select_related("recorded_by").order_by("-number"))


def team_roles_of(user: User | AnonymousUser) -> dict[int, set[str]]:
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
