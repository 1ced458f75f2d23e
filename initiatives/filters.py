"""Board and archive filters (django-filter); the API reuses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django_filters
import django_filters.fields
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
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


class _ListedChoices(django_filters.fields.ModelChoiceIterator):
    """The choices of a `ListedModelChoiceField`, from its rows read once."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        field = self.field
        if field.empty_label is not None:
            yield ("", field.empty_label)
        if field.null_label is not None:
            yield (field.null_value, field.null_label)
        for obj in field.listed():
            yield self.choice(obj)

    def __len__(self) -> int:
        field = self.field
        extra = (field.empty_label is not None) + (field.null_label is not None)
        return len(field.listed()) + extra

    def __bool__(self) -> bool:
        return self.field.empty_label is not None or bool(self.field.listed())


class ListedModelChoiceField(django_filters.fields.ModelChoiceField):
    """A model choice whose rows are read once per form, in one query, for both showing the
    select and checking the choice made. (Django's field asks the database once to check the
    choice and again, through a server-side cursor on PostgreSQL, to list the options.) For
    short lists: the business units, the program managers."""

    iterator = _ListedChoices

    def listed(self) -> list[Any]:
        # The queryset keeps its rows once read; a form's copy of the field gets a fresh one.
        return list(self.queryset)

    def to_python(self, value: Any) -> Any:
        """As ModelChoiceField.to_python, the row found among the listed ones."""
        if self.null_label is not None and value == self.null_value:
            return value
        if value in self.empty_values:
            return None
        self.validate_no_null_characters(value)
        key = self.to_field_name or "pk"
        model = self.queryset.model
        try:
            if isinstance(value, model):
                value = getattr(value, key)
            # The key as the database would compare it ("01" is the id 1, as in a query).
            field = model._meta.pk if key == "pk" else model._meta.get_field(key)
            wanted = field.to_python(value)
        except (ValueError, TypeError, ValidationError):
            wanted = _NOTHING
        for obj in self.listed():
            if getattr(obj, key) == wanted:
                return obj
        raise ValidationError(
            self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
        )


_NOTHING = object()


class ListedModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = ListedModelChoiceField


class InitiativeFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    unit = ListedModelChoiceFilter(
        field_name="business_unit",
        queryset=_units,
        label="Business unit",
        empty_label="All units",
    )
    accountable = ListedModelChoiceFilter(
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
