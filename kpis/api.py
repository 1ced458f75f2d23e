"""REST endpoints for KPIs and their measurements."""

from __future__ import annotations

import math

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import validated
from initiatives.filters import InitiativeKeyFilter
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


class KPIFilter(filters.FilterSet):
    initiative = InitiativeKeyFilter(field_name="initiative_id")

    class Meta:
        model = KPI
        fields = ["initiative"]


def _kpis(user: object) -> QuerySet[KPI]:
    # The KPI's job id is part of its representation (a reverse relation by name).
    return selectors.kpis_visible_to(user).select_related("job").order_by("id")  # type: ignore[arg-type]


class KPIList(generics.ListAPIView):
    serializer_class = KPISerializer
    queryset = KPI.objects.none()  # for the schema; get_queryset gives the user's
    filterset_class = KPIFilter
    ordering_fields = ["id", "name"]

    def get_queryset(self) -> QuerySet[KPI]:
        return _kpis(self.request.user)

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
        serializer = MeasurementIn(data=request.data, many=many)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data if many else [serializer.validated_data]
        created, updated = services.measurements_push(
            kpi=kpi,
            user=request.user,
            items=[(item["as_of"], item["value"]) for item in items],
        )
        return Response({"created": created, "updated": updated})
