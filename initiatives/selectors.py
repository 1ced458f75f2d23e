"""Reads shared by pages, the API and tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.http import Http404

from initiatives.models import FINAL_STATUSES, KEY_PREFIX, Initiative

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
    """Initiatives with what a list shows, in a constant number of queries."""
    return Initiative.objects.select_related("business_unit", "accountable")


def initiative_get(key: str) -> Initiative:
    pk = parse_key(key)
    if pk is None:
        raise Http404(f"No initiative {key}.")
    try:
        return initiative_list().get(pk=pk)
    except Initiative.DoesNotExist:
        raise Http404(f"No initiative {key}.") from None


def my_initiatives(user: User | AnonymousUser) -> QuerySet[Initiative]:
    """Open initiatives the user is accountable for or on the team of."""
    return (
        initiative_list()
        .filter(
            Q(accountable_id=user.pk)
            | Q(memberships__user_id=user.pk, memberships__left_at__isnull=True)
        )
        .exclude(status__in=FINAL_STATUSES)
        .distinct()
        .order_by("phase", "id")
    )
