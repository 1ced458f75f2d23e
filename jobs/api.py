"""REST endpoints for data sources, jobs and runs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import validated
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


class JobFilter(filters.FilterSet):
    initiative = InitiativeKeyFilter(field_name="kpi__initiative_id")

    class Meta:
        model = Job
        fields = ["kpi", "enabled", "initiative"]


class JobList(generics.ListAPIView):
    serializer_class = JobSerializer
    queryset = Job.objects.none()  # for the schema; get_queryset gives the user's
    filterset_class = JobFilter
    ordering_fields = ["id", "next_run_at"]

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.jobs_visible_to(self.request.user).order_by("id")

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


class JobRuns(generics.ListAPIView):
    serializer_class = RunSerializer
    filterset_fields = ["state", "trigger"]
    ordering_fields = ["scheduled_for", "id"]

    queryset = Run.objects.none()  # for the schema; get_queryset gives the job's runs

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        return selectors.runs_of(selectors.job_get(self.kwargs["pk"], self.request.user))


class RunDetail(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(selectors.run_get(pk, request.user)).data)
