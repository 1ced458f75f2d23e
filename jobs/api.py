"""REST endpoints for data sources, jobs and runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import PageOrCursorPagination, iso_datetime, validated
from bizdevops.lists import FormOnce, LeanListAPIView
from initiatives.filters import InitiativeKeyFilter
from jobs import permissions, selectors, services
from jobs.models import DataSource, Job, Run
from jobs.serializers import (
    DataSourceSerializer,
    DataSourceWriteSerializer,
    JobSerializer,
    JobUpdateSerializer,
    JobWriteSerializer,
    RunAcceptedSerializer,
    RunRequestSerializer,
    RunSerializer,
)
from jobs.services import JOB_FIELDS


class DataSourceList(generics.ListAPIView):
    serializer_class = DataSourceSerializer
    queryset = DataSource.objects.none()  # for the schema; get_queryset gives the user's
    ordering_fields = ["name", "id"]

    def get_queryset(self) -> QuerySet[DataSource]:
        return selectors.data_sources_visible_to(self.request.user)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        permissions.can_list_data_sources.check(request.user)
        return super().list(request, *args, **kwargs)

    @extend_schema(request=DataSourceWriteSerializer, responses={201: DataSourceSerializer})
    def post(self, request: Request) -> Response:
        permissions.can_manage_data_sources.check(request.user)
        data = validated(DataSourceWriteSerializer, request)
        source = services.data_source_save(user=request.user, **data)
        return Response(DataSourceSerializer(source).data, status=status.HTTP_201_CREATED)


class JobFilter(FormOnce, filters.FilterSet):
    initiative = InitiativeKeyFilter(field_name="kpi__initiative_id")

    class Meta:
        model = Job
        fields = ["kpi", "enabled", "initiative"]


JOB_COLUMNS = (
    "id",
    "kpi_id",
    *(f"{name}_id" if name == "data_source" else name for name in JOB_FIELDS),
    "next_run_at",
    "created_at",
    "updated_at",
)
_JOB_TIMES = ("next_run_at", "created_at", "updated_at")


def job_row(values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """`JobSerializer`'s JSON object of one job, from its `JOB_COLUMNS`
    (tests/api/test_lean_lists.py holds the two to the same bytes)."""
    row: dict[str, Any] = {"id": values["id"], "kpi": values["kpi_id"]}
    for name in JOB_FIELDS:
        row[name] = values["data_source_id"] if name == "data_source" else values[name]
    for name in _JOB_TIMES:
        row[name] = iso_datetime(values[name], zone)
    return row


class JobList(LeanListAPIView):
    serializer_class = JobSerializer
    queryset = Job.objects.none()  # for the schema; get_queryset gives the user's
    filterset_class = JobFilter
    ordering_fields = ["id", "next_run_at"]
    columns = JOB_COLUMNS

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.jobs_visible_to(self.request.user).order_by("id")

    def row(self, values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
        return job_row(values, zone)

    @extend_schema(request=JobWriteSerializer, responses={201: JobSerializer})
    def post(self, request: Request) -> Response:
        data = validated(JobWriteSerializer, request, user=request.user)
        job = services.job_register(kpi=data.pop("kpi"), user=request.user, **data)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetail(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(selectors.job_get(pk, request.user)).data)

    @extend_schema(request=JobUpdateSerializer, responses=JobSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        job = selectors.job_get(pk, request.user)
        data = validated(JobUpdateSerializer, request, partial=True, user=request.user)
        job = services.job_update(job=job, user=request.user, **data)
        return Response(JobSerializer(job).data)


class JobRun(APIView):
    @extend_schema(request=RunRequestSerializer, responses={202: RunAcceptedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        job = selectors.job_get(pk, request.user)
        data = validated(RunRequestSerializer, request)
        run = services.run_request(job=job, user=request.user, trigger=data["trigger"])
        url = reverse("api-run-detail", kwargs={"pk": run.pk})
        return Response(
            {"run": run.pk, "state": run.state, "url": url}, status=status.HTTP_202_ACCEPTED
        )


RUN_COLUMNS = (
    "id",
    "job_id",
    "scheduled_for",
    "trigger",
    "state",
    "attempt",
    "started_at",
    "finished_at",
    "value",
    "error",
    "worker",
)


def run_row(values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """`RunSerializer`'s JSON object of one run, from its `RUN_COLUMNS`
    (tests/api/test_lean_lists.py holds the two to the same bytes)."""
    # The model's own duration rule, on a bare instance holding only what it reads.
    timed = Run.__new__(Run)
    timed.__dict__.update(started_at=values["started_at"], finished_at=values["finished_at"])
    value = values["value"]
    return {
        "id": values["id"],
        "job": values["job_id"],
        "scheduled_for": iso_datetime(values["scheduled_for"], zone),
        "trigger": values["trigger"],
        "state": values["state"],
        "attempt": values["attempt"],
        "started_at": iso_datetime(values["started_at"], zone),
        "finished_at": iso_datetime(values["finished_at"], zone),
        "duration": timed.duration,
        "value": None if value is None else float(value),
        "error": values["error"],
        "worker": values["worker"],
    }


class RunPagination(PageOrCursorPagination):
    # Unique per job (one run per job and moment), and the list's own order.
    cursor_ordering = "-scheduled_for"


class RunFilter(FormOnce, filters.FilterSet):
    # Declared rather than `filterset_fields`, from which django-filter builds a new filter
    # set class on every request.
    class Meta:
        model = Run
        fields = ["state", "trigger"]


class JobRuns(LeanListAPIView):
    serializer_class = RunSerializer
    filterset_class = RunFilter
    ordering_fields = ["scheduled_for", "id"]
    pagination_class = RunPagination
    columns = RUN_COLUMNS

    queryset = Run.objects.none()  # for the schema; get_queryset gives the job's runs

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        return selectors.runs_of(selectors.job_get(self.kwargs["pk"], self.request.user))

    def row(self, values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
        return run_row(values, zone)


class RunDetail(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(selectors.run_get(pk, request.user)).data)
