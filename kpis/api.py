"""REST endpoints for KPIs and their measurements."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import iso_datetime, validated
from bizdevops.errors import DomainError
from bizdevops.lists import FormOnce, LeanListAPIView
from initiatives.filters import InitiativeKeyFilter
from initiatives.models import KEY_PREFIX
from initiatives.selectors import initiative_get
from kpis import selectors, services
from kpis.models import KPI
from kpis.serializers import (
    KPISerializer,
    KPIUpdateSerializer,
    KPIWriteSerializer,
    MeasurementIn,
    MeasurementQuerySerializer,
    PushResultSerializer,
)


class KPIFilter(FormOnce, filters.FilterSet):
    initiative = InitiativeKeyFilter(field_name="initiative_id")

    class Meta:
        model = KPI
        fields = ["initiative"]


def _kpis(user: object) -> QuerySet[KPI]:
    # The KPI's job id is part of its representation (a reverse relation by name).
    return selectors.kpis_visible_to(user).select_related("job").order_by("id")  # type: ignore[arg-type]


KPI_COLUMNS = (
    "id",
    "initiative_id",
    "name",
    "unit",
    "description",
    "direction",
    "target",
    "warning_threshold",
    "critical_threshold",
    "decimals",
    "job",
    "created_at",
)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def kpi_row(values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """`KPISerializer`'s JSON object of one KPI, from its `KPI_COLUMNS`
    (tests/api/test_lean_lists.py holds the two to the same bytes)."""
    return {
        "id": values["id"],
        "initiative": f"{KEY_PREFIX}{values['initiative_id']}",
        "name": values["name"],
        "unit": values["unit"],
        "description": values["description"],
        "direction": values["direction"],
        "target": _number(values["target"]),
        "warning_threshold": _number(values["warning_threshold"]),
        "critical_threshold": _number(values["critical_threshold"]),
        "decimals": values["decimals"],
        "job": values["job"],
        "created_at": iso_datetime(values["created_at"], zone),
    }


class KPIList(LeanListAPIView):
    serializer_class = KPISerializer
    queryset = KPI.objects.none()  # for the schema; get_queryset gives the user's
    filterset_class = KPIFilter
    ordering_fields = ["id", "name"]
    columns = KPI_COLUMNS

    def get_queryset(self) -> QuerySet[KPI]:
        return _kpis(self.request.user)

    def row(self, values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
        return kpi_row(values, zone)

    @extend_schema(request=KPIWriteSerializer, responses={201: KPISerializer})
    def post(self, request: Request) -> Response:
        data = validated(KPIWriteSerializer, request)
        initiative = initiative_get(data.pop("initiative"), request.user)
        kpi = services.kpi_define(initiative=initiative, user=request.user, **data)
        return Response(KPISerializer(kpi).data, status=status.HTTP_201_CREATED)


class KPIDetail(APIView):
    @extend_schema(responses=KPISerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(KPISerializer(selectors.kpi_get(pk, request.user)).data)

    @extend_schema(request=KPIUpdateSerializer, responses=KPISerializer)
    def patch(self, request: Request, pk: int) -> Response:
        kpi = selectors.kpi_get(pk, request.user)
        data = validated(KPIUpdateSerializer, request, partial=True)
        services.kpi_update(kpi=kpi, user=request.user, **data)
        return Response(KPISerializer(selectors.kpi_get(pk, request.user)).data)

    @extend_schema(
        responses={204: None},
        description=(
            "Remove a KPI while its initiative is in Biz (those who may define its KPIs); "
            "409 outside Biz, or when the KPI has values or a job."
        ),
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.kpi_remove(kpi=selectors.kpi_get(pk, request.user), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RawPagination(CursorPagination):
    ordering = "as_of"
    page_size = 1000
    page_size_query_param = "page_size"
    max_page_size = 5000


MEASUREMENT_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="Inclusive, with a time zone."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="Exclusive, with a time zone."),
    OpenApiParameter(
        "bucket",
        OpenApiTypes.STR,
        enum=list(selectors.CALENDAR_BUCKETS),
        description="Aggregate per bucket: [start, avg, min, max, count].",
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Raw values: the next page."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="Raw values per page (≤ 5000)."),
]

MeasurementPage = inline_serializer(
    "MeasurementPage",
    {
        "bucket": serializers.CharField(allow_null=True),
        "columns": serializers.ListField(child=serializers.CharField()),
        "next": serializers.CharField(allow_null=True),
        "previous": serializers.CharField(allow_null=True),
        "results": serializers.ListField(child=serializers.ListField()),
    },
)


def _finite_or_none(value: float) -> float | None:
    # Infinity or NaN stored before values were bounded: strict JSON has no such numbers.
    return value if math.isfinite(value) else None


def _plain_items(data: list[Any]) -> list[tuple[dt.datetime, float]] | None:
    """The items of a push, when every one is plain: exactly `as_of` (an ISO 8601 string with
    a time zone) and `value` (a JSON number) that `services.measurement_check` accepts --
    what MeasurementIn accepts, giving the same (as_of, value); else None, and MeasurementIn
    validates the batch and words the errors of every item at fault. (MeasurementIn took
    about half of a 10,000-value push's time.)"""
    zone = timezone.get_current_timezone()
    now = timezone.now()
    pairs = []
    try:
        for item in data:
            if type(item) is not dict or item.keys() != {"as_of", "value"}:
                return None
            as_of, value = item["as_of"], item["value"]
            if type(as_of) is not str or type(value) not in (int, float):
                return None
            moment = parse_datetime(as_of)
            if moment is None or moment.utcoffset() is None:
                return None
            moment = moment.astimezone(zone)  # as DRF's DateTimeField gives it
            services.measurement_check(as_of=moment, value=float(value), now=now)
            pairs.append((moment, float(value)))
    except (ValueError, OverflowError, DomainError):
        return None
    return pairs


class Measurements(APIView):
    """Raw values (cursor-paginated) or buckets, as plain arrays; POST pushes values."""

    @extend_schema(parameters=MEASUREMENT_PARAMETERS, responses=MeasurementPage)
    def get(self, request: Request, pk: int) -> Response:
        kpi = selectors.kpi_get(pk, request.user)
        query = MeasurementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        start, end = params.get("from"), params.get("to")
        if start and end and start >= end:
            raise ValidationError({"to": ["'to' must be after 'from'."]})
        bucket = params.get("bucket")
        if bucket is None:
            paginator = RawPagination()
            rows = selectors.measurements_of(kpi, start, end).values("as_of", "value")
            page = paginator.paginate_queryset(rows, request, view=self)
            return Response(
                {
                    "bucket": None,
                    "columns": ["as_of", "value"],
                    "next": paginator.get_next_link(),
                    "previous": paginator.get_previous_link(),
                    "results": [
                        [row["as_of"].isoformat(), _finite_or_none(row["value"])]
                        for row in page or []
                    ],
                }
            )
        try:
            results = selectors.calendar_buckets(kpi, bucket, start, end)
        except selectors.TooManyBuckets:
            raise ValidationError(
                {"bucket": [f"More than {selectors.MAX_BUCKETS} buckets: narrow the range."]}
            ) from None
        return Response(
            {
                "bucket": bucket,
                "columns": ["start", "avg", "min", "max", "count"],
                "next": None,
                "previous": None,
                "results": results,
            }
        )

    @extend_schema(
        request=MeasurementIn(many=True),
        responses={200: PushResultSerializer},
        description=(
            "Push a list of up to 10,000 values (a single object is accepted too). The same "
            "as_of again updates the value."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        kpi = selectors.kpi_get(pk, request.user)
        many = isinstance(request.data, list)
        if many and len(request.data) > services.MAX_PUSH:
            raise ValidationError({"non_field_errors": [f"At most {services.MAX_PUSH} values."]})
        pairs = _plain_items(request.data) if many else None
        if pairs is None:
            serializer = MeasurementIn(data=request.data, many=many)
            serializer.is_valid(raise_exception=True)
            items = serializer.validated_data if many else [serializer.validated_data]
            pairs = [(item["as_of"], item["value"]) for item in items]
        created, updated = services.measurements_push(kpi=kpi, user=request.user, items=pairs)
        return Response({"created": created, "updated": updated})
