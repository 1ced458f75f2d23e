from __future__ import annotations

from typing import Any

from rest_framework import serializers

from bizdevops.api import StrictSerializer
from jobs.models import (
    INTERVAL_MAX_SECONDS,
    INTERVAL_MIN_SECONDS,
    RETRIES_DEFAULT,
    RETRIES_MAX,
    TIMEOUT_DEFAULT_SECONDS,
    TIMEOUT_MAX_SECONDS,
    TIMEOUT_MIN_SECONDS,
    DataSource,
    DataSourceKind,
    Job,
    Run,
    ScheduleKind,
    SourceKind,
)
from jobs.selectors import data_sources_visible_to
from jobs.services import JOB_FIELDS
from kpis.models import KPI
from kpis.selectors import kpis_visible_to


class DataSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = DataSource
        fields = [
            "id",
            "name",
            "kind",
            "display_url",
            "url_env",
            "allow_private_addresses",
            "description",
        ]


class DataSourceWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=DataSourceKind.choices)
    url = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Write-only; stored encrypted and never returned.",
    )
    url_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
    allow_private_addresses = serializers.BooleanField(required=False, default=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)


class RunSerializer(serializers.ModelSerializer):
    duration = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "job",
            "scheduled_for",
            "trigger",
            "state",
            "attempt",
            "started_at",
            "finished_at",
            "duration",
            "value",
            "error",
            "worker",
        ]


class JobSerializer(serializers.ModelSerializer):
    data_source = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kpi",
            *JOB_FIELDS,
            "next_run_at",
            "created_at",
            "updated_at",
        ]


class JobWriteSerializer(StrictSerializer):
    # Only the KPIs and data sources the user may see: another unit's KPI is "does not
    # exist", exactly like a missing one (the querysets are set per request, below).
    kpi = serializers.PrimaryKeyRelatedField(queryset=KPI.objects.none())
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    cron = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    interval_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=INTERVAL_MIN_SECONDS,
        max_value=INTERVAL_MAX_SECONDS,
    )
    source_kind = serializers.ChoiceField(choices=SourceKind.choices)
    data_source = serializers.PrimaryKeyRelatedField(
        queryset=DataSource.objects.none(), required=False, allow_null=True
    )
    sql = serializers.CharField(max_length=20_000, required=False, allow_blank=True, default="")
    http_path = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    json_path = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    calculation = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    timeout_seconds = serializers.IntegerField(
        min_value=TIMEOUT_MIN_SECONDS,
        max_value=TIMEOUT_MAX_SECONDS,
        default=TIMEOUT_DEFAULT_SECONDS,
    )
    max_retries = serializers.IntegerField(
        min_value=0, max_value=RETRIES_MAX, default=RETRIES_DEFAULT
    )
    enabled = serializers.BooleanField(default=True)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            if "kpi" in self.fields:
                self.fields["kpi"].queryset = kpis_visible_to(user)
            self.fields["data_source"].queryset = data_sources_visible_to(user)


class JobUpdateSerializer(JobWriteSerializer):
    kpi = None


class RunRequestSerializer(StrictSerializer):
    trigger = serializers.ChoiceField(choices=["manual", "trial"], default="manual")


class RunAcceptedSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    state = serializers.CharField()
    url = serializers.CharField()
