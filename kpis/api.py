"""REST endpoints for KPIs, measurements, data sources, jobs and runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Avg, Count, Max, Min, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMonth, TruncWeek
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import validated
from initiatives import selectors as initiative_selectors
from initiatives.roles import is_admin
from initiatives.selectors import visible
from kpis import services
from kpis.models import KPI, DataSource, Job, Measurement, Run
from kpis.serializers import (
    DataSourceSerializer,
    DataSourceWriteSerializer,
    JobSerializer,
    JobUpdateSerializer,
    JobWriteSerializer,
    KPISerializer,
    KPIUpdateSerializer,
    KPIWriteSerializer,
    MeasurementIn,
    MeasurementQuerySerializer,
    PushResultSerializer,
    RunAcceptedSerializer,
    RunRequestSerializer,
    RunSerializer,
)

BUCKETS = {
    "hour": (TruncHour, dt.timedelta(hours=1)),
    "day": (TruncDay, dt.timedelta(days=1)),
    "week": (TruncWeek, dt.timedelta(weeks=1)),
    "month": (TruncMonth, dt.timedelta(days=28)),
}
MAX_BUCKETS = 10_000


class KPIFilter(filters.FilterSet):
    initiative = filters.CharFilter(method="by_key", max_length=20)

    class Meta:
        model = KPI
        fields = ["initiative"]

    def by_key(self, queryset: QuerySet[KPI], name: str, value: str) -> QuerySet[KPI]:
        pk = initiative_selectors.parse_key(value.strip())
        return queryset.filter(initiative_id=pk) if pk is not None else queryset.none()


class KPIList(generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = KPISerializer
    queryset = KPI.objects.select_related("initiative", "job").order_by("id")
    filterset_class = KPIFilter
    ordering_fields = ["id", "name"]

    def get_queryset(self) -> QuerySet[KPI]:
        return visible(super().get_queryset(), self.request.user, "initiative__")

    @extend_schema(request=KPIWriteSerializer, responses={201: KPISerializer})
    def post(self, request: Request) -> Response:
        data = validated(KPIWriteSerializer, request)
        initiative = initiative_selectors.initiative_get(data.pop("initiative"), request.user)
        kpi = services.kpi_define(initiative=initiative, user=request.user, **data)  # type: ignore[arg-type]
        return Response(KPISerializer(kpi).data, status=status.HTTP_201_CREATED)


class KPIDetail(APIView):
    @extend_schema(responses=KPISerializer)
    def get(self, request: Request, pk: int) -> Response:
        kpis = visible(KPIList.queryset, request.user, "initiative__")
        return Response(KPISerializer(get_object_or_404(kpis, pk=pk)).data)

    @extend_schema(request=KPIUpdateSerializer, responses=KPISerializer)
    def patch(self, request: Request, pk: int) -> Response:
        kpi = get_object_or_404(visible(KPIList.queryset, request.user, "initiative__"), pk=pk)
        data = validated(KPIUpdateSerializer, request, partial=True)
        services.kpi_update(kpi=kpi, user=request.user, **data)  # type: ignore[arg-type]
        return Response(KPISerializer(get_object_or_404(KPIList.queryset, pk=pk)).data)


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
        enum=list(BUCKETS),
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


class Measurements(APIView):
    """Raw values (cursor-paginated) or buckets, as plain arrays; POST pushes values."""

    @extend_schema(parameters=MEASUREMENT_PARAMETERS, responses=MeasurementPage)
    def get(self, request: Request, pk: int) -> Response:
        kpi = get_object_or_404(visible(KPI.objects.all(), request.user, "initiative__"), pk=pk)
        query = MeasurementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        start, end = params.get("from"), params.get("to")
        if start and end and start >= end:
            raise ValidationError({"to": ["'to' must be after 'from'."]})
        rows = Measurement.objects.filter(kpi=kpi)
        if start:
            rows = rows.filter(as_of__gte=start)
        if end:
            rows = rows.filter(as_of__lt=end)
        bucket = params.get("bucket")
        if bucket is None:
            paginator = RawPagination()
            page = paginator.paginate_queryset(rows.values("as_of", "value"), request, view=self)
            return Response(
                {
                    "bucket": None,
                    "columns": ["as_of", "value"],
                    "next": paginator.get_next_link(),
                    "previous": paginator.get_previous_link(),
                    "results": [[row["as_of"].isoformat(), row["value"]] for row in page or []],
                }
            )
        trunc, size = BUCKETS[bucket]
        if start and end and (end - start) / size > MAX_BUCKETS:
            raise ValidationError(
                {"bucket": [f"More than {MAX_BUCKETS} buckets: narrow the range."]}
            )
        buckets = (
            rows.annotate(start=trunc("as_of"))
            .values("start")
            .annotate(avg=Avg("value"), min=Min("value"), max=Max("value"), count=Count("id"))
            .order_by("start")
        )[: MAX_BUCKETS + 1]
        results = [
            [b["start"].isoformat(), b["avg"], b["min"], b["max"], b["count"]] for b in buckets
        ]
        if len(results) > MAX_BUCKETS:
            raise ValidationError(
                {"bucket": [f"More than {MAX_BUCKETS} buckets: narrow the range."]}
            )
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
        kpis = visible(KPI.objects.select_related("initiative"), request.user, "initiative__")
        kpi = get_object_or_404(kpis, pk=pk)
        many = isinstance(request.data, list)
        if many and len(request.data) > services.MAX_PUSH:
            raise ValidationError({"non_field_errors": [f"At most {services.MAX_PUSH} values."]})
        serializer = MeasurementIn(data=request.data, many=many)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data if many else [serializer.validated_data]
        created, updated = services.measurements_push(
            kpi=kpi,
            user=request.user,  # type: ignore[arg-type]
            items=[(item["as_of"], item["value"]) for item in items],
        )
        return Response({"created": created, "updated": updated})


class DataSourceList(generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = DataSourceSerializer
    queryset = DataSource.objects.order_by("name")
    ordering_fields = ["name", "id"]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_admin(request.user):
            raise PermissionDenied("Only admins see data sources.")
        return super().list(request, *args, **kwargs)

    @extend_schema(request=DataSourceWriteSerializer, responses={201: DataSourceSerializer})
    def post(self, request: Request) -> Response:
        data = validated(DataSourceWriteSerializer, request)
        source = services.data_source_save(user=request.user, **data)  # type: ignore[arg-type]
        return Response(DataSourceSerializer(source).data, status=status.HTTP_201_CREATED)


class JobFilter(filters.FilterSet):
    initiative = filters.CharFilter(method="by_key", max_length=20)

    class Meta:
        model = Job
        fields = ["kpi", "enabled", "initiative"]

    def by_key(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        pk = initiative_selectors.parse_key(value.strip())
        return queryset.filter(kpi__initiative_id=pk) if pk is not None else queryset.none()


class JobList(generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = JobSerializer
    queryset = Job.objects.order_by("id")
    filterset_class = JobFilter
    ordering_fields = ["id", "next_run_at"]

    def get_queryset(self) -> QuerySet[Job]:
        return visible(super().get_queryset(), self.request.user, "kpi__initiative__")

    @extend_schema(request=JobWriteSerializer, responses={201: JobSerializer})
    def post(self, request: Request) -> Response:
        data = validated(JobWriteSerializer, request)
        job = services.job_register(kpi=data.pop("kpi"), user=request.user, **data)  # type: ignore[arg-type]
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetail(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        jobs = visible(Job.objects.all(), request.user, "kpi__initiative__")
        return Response(JobSerializer(get_object_or_404(jobs, pk=pk)).data)

    @extend_schema(request=JobUpdateSerializer, responses=JobSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        jobs = visible(
            Job.objects.select_related("kpi__initiative"), request.user, "kpi__initiative__"
        )
        job = get_object_or_404(jobs, pk=pk)
        data = validated(JobUpdateSerializer, request, partial=True)
        job = services.job_update(job=job, user=request.user, **data)  # type: ignore[arg-type]
        return Response(JobSerializer(job).data)


class JobRun(APIView):
    @extend_schema(request=RunRequestSerializer, responses={202: RunAcceptedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        jobs = visible(
            Job.objects.select_related("kpi__initiative"), request.user, "kpi__initiative__"
        )
        job = get_object_or_404(jobs, pk=pk)
        data = validated(RunRequestSerializer, request)
        run = services.run_request(job=job, user=request.user, trigger=data["trigger"])  # type: ignore[arg-type]
        url = reverse("api-run-detail", kwargs={"pk": run.pk})
        return Response(
            {"run": run.pk, "state": run.state, "url": url}, status=status.HTTP_202_ACCEPTED
        )


class JobRuns(generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = RunSerializer
    filterset_fields = ["state", "trigger"]
    ordering_fields = ["scheduled_for", "id"]

    queryset = Run.objects.none()  # for the schema; get_queryset gives the job's runs

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        jobs = visible(Job.objects.all(), self.request.user, "kpi__initiative__")
        job = get_object_or_404(jobs, pk=self.kwargs["pk"])
        return job.runs.order_by("-scheduled_for", "-id")


class RunDetail(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        runs = visible(Run.objects.all(), request.user, "job__kpi__initiative__")
        return Response(RunSerializer(get_object_or_404(runs, pk=pk)).data)
