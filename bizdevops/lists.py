"""List endpoints that read plain rows (a module of its own: DRF's generic views load the
pagination setting, which names `bizdevops.api`)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, ClassVar

from django.utils import timezone
from rest_framework import generics
from rest_framework.response import Response


# A list read as plain rows of the columns it shows (`.values()`), each made into its JSON
# object by `row`, without a model object or a serializer per row. `serializer_class` stays:
# it describes the rows in the schema, and the tests compare the two outputs. (A comment, not
# a docstring: the schema would show a docstring as every subclass's description.)
class LeanListAPIView(generics.ListAPIView):
    columns: tuple[str, ...] = ()

    def row(self, values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
        raise NotImplementedError

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        zone = timezone.get_current_timezone()
        paginator = self.paginator
        if paginator is None:
            rows = queryset.values(*self.columns)
            return Response([self.row(values, zone) for values in rows])
        page = paginator.paginate_rows(queryset, self.columns, request, view=self)
        return self.get_paginated_response([self.row(values, zone) for values in page or []])


class _SharedFields(dict):
    """The fields of a form class built by `FormOnce`: every form of it shares them instead of
    a deep copy each (its fields depend on nothing of the request, and validating a value
    changes nothing in a field)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return dict(self)


class _FiltersCopiedOnce(dict):
    """The filters of a `FormOnce` filter set: each filter set gets a shallow copy of each
    (its own `parent` and `model`, set by django-filter), not a deep copy of their choices,
    fields and widgets."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        copies = {}
        for name, filter_ in self.items():
            clone = copy.copy(filter_)
            if filter_.method is not None:
                clone.method = filter_.method  # a method filter binds to its own copy
            copies[name] = clone
        return copies


class FormOnce:
    """For a filter set whose form depends on nothing of the request (no per-user choices):
    django-filter builds a new form class on every request, about 0.2 ms of a list's time
    (measured); this builds it once per filter set. Each request still gets its own form, but
    its fields and the filters are shared or copied shallowly rather than deep-copied (a
    tenth of a list's time)."""

    _form_classes: ClassVar[dict[type, type]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if not isinstance(cls.__dict__.get("base_filters"), _FiltersCopiedOnce):
            cls.base_filters = _FiltersCopiedOnce(cls.base_filters)  # type: ignore[attr-defined]
        super().__init__(*args, **kwargs)

    def get_form_class(self) -> type:
        form_class = FormOnce._form_classes.get(type(self))
        if form_class is None:
            form_class = super().get_form_class()  # type: ignore[misc]
            form_class.base_fields = _SharedFields(form_class.base_fields)
            FormOnce._form_classes[type(self)] = form_class
        return form_class
