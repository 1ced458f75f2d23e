"""Board and archive filters (django-filter); the API reuses them."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from bizdevops.roles import Role
from initiatives.models import BusinessUnit, Initiative, Status
from initiatives.selectors import business_units_visible_to, parse_key

OPEN_STATUSES = [(Status.ACTIVE.value, Status.ACTIVE.label), (Status.ON_HOLD.value, "On hold")]
CLOSED_STATUSES = [(Status.CANCELLED.value, "Cancelled"), (Status.RETIRED.value, "Retired")]


def _units(request: Any) -> QuerySet[BusinessUnit]:
    """The units the user may see (a stakeholder: their own), so no other unit is named."""
    if request is None:
        return BusinessUnit.objects.none()
    return business_units_visible_to(request.user)


def _program_managers(request: Any) -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(groups__name=Role.PROGRAM_MANAGER.value)
        .order_by("username")
    )


class InitiativeFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    unit = django_filters.ModelChoiceFilter(
        field_name="business_unit",
        queryset=_units,
        label="Business unit",
        empty_label="All units",
    )
    accountable = django_filters.ModelChoiceFilter(
        queryset=_program_managers,
        to_field_name="username",
        label="Accountable",
        empty_label="Anyone",
    )
    status = django_filters.ChoiceFilter(choices=OPEN_STATUSES, empty_label="Active and on hold")
    mine = django_filters.BooleanFilter(method="only_mine", label="Only mine")

    class Meta:
        model = Initiative
        fields = ["q", "unit", "accountable", "status", "mine"]

    def search(self, queryset: QuerySet[Initiative], name: str, value: str) -> QuerySet[Initiative]:
        value = value.strip()
        if not value:
            return queryset
        pk = parse_key(value)
        if pk is not None:
            return queryset.filter(pk=pk)
        return queryset.filter(
            Q(title__icontains=value)
            | Q(business_problem__icontains=value)
            | Q(use_case__icontains=value)
        )

    def only_mine(
        self, queryset: QuerySet[Initiative], name: str, value: bool | None
    ) -> QuerySet[Initiative]:
        if not value or self.request is None or not self.request.user.is_authenticated:
            return queryset
        user_id = self.request.user.pk
        mine = Initiative.objects.filter(
            Q(accountable_id=user_id)
            | Q(memberships__user_id=user_id, memberships__left_at__isnull=True)
        ).values("pk")
        return queryset.filter(pk__in=mine)


class ArchiveFilter(InitiativeFilter):
    status = django_filters.ChoiceFilter(
        choices=CLOSED_STATUSES, empty_label="Cancelled and retired"
    )


class IdFilter(django_filters.Filter):
    """A whole, positive, 64-bit id (not a decimal that the database would truncate)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class InitiativeKeyFilter(django_filters.CharFilter):
    """`?initiative=BDO-n` on a list of things that belong to an initiative; `field_name` is
    the path to the initiative's id (e.g. "kpi__initiative_id"). An unknown key matches
    nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("help_text", "An initiative key, e.g. BDO-3.")
        super().__init__(*args, **kwargs)

    def filter(self, qs: QuerySet[Any], value: str) -> QuerySet[Any]:
        if value in ([], (), {}, "", None):
            return qs
        pk = parse_key(value.strip())
        return qs.filter(**{self.field_name: pk}) if pk is not None else qs.none()


class InitiativeApiFilter(django_filters.FilterSet):
    """Filters of GET /api/v1/initiatives/."""

    phase = django_filters.ChoiceFilter(choices=Initiative._meta.get_field("phase").choices)
    status = django_filters.ChoiceFilter(choices=Initiative._meta.get_field("status").choices)
    business_unit = IdFilter(field_name="business_unit_id")
    accountable = django_filters.CharFilter(field_name="accountable__username")
    search = django_filters.CharFilter(method="search_text", max_length=200)

    class Meta:
        model = Initiative
        fields = ["phase", "status", "business_unit", "accountable", "search"]

    def search_text(
        self, queryset: QuerySet[Initiative], name: str, value: str
    ) -> QuerySet[Initiative]:
        return InitiativeFilter.search(self, queryset, name, value)
