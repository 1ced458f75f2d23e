from __future__ import annotations

from rest_framework import serializers

from bizdevops.api import AwareDateTimeField, StrictSerializer
from kpis.models import (
    KPI,
    DataSource,
    DataSourceKind,
    Direction,
    Job,
    Run,
    ScheduleKind,
    SourceKind,
)

NUMBER = {"required": False, "allow_null": True}


class KPISerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    initiative = serializers.CharField(source="initiative.key", read_only=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = KPI
        fields = [
            "id",
            "initiative",
            "name",
            "unit",
            "description",
            "direction",
            "target",
            "warning_threshold",
            "critical_threshold",
            "job",
            "created_at",
        ]


class KPIWriteSerializer(StrictSerializer):
    initiative = serializers.CharField(max_length=20, help_text="Initiative key, e.g. BDO-3.")
    name = serializers.CharField(max_length=120)
    unit = serializers.CharField(max_length=30, required=False, allow_blank=True)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    target = serializers.FloatField(**NUMBER)
    warning_threshold = serializers.FloatField(**NUMBER)
    critical_threshold = serializers.FloatField(**NUMBER)


class KPIUpdateSerializer(KPIWriteSerializer):
    initiative = None  # type: ignore[assignment]


class MeasurementIn(StrictSerializer):
    as_of = AwareDateTimeField()
    value = serializers.FloatField()

    def validate_value(self, value: float) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise serializers.ValidationError("A finite number is required.")
        return value


class PushResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class MeasurementQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    from_ = AwareDateTimeField(required=False)
    to = AwareDateTimeField(required=False)
    bucket = serializers.ChoiceField(choices=["hour", "day", "week", "month"], required=False)
    cursor = serializers.CharField(required=False, max_length=500)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=5000)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class DataSourceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
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


class RunSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
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


class JobSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    data_source = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kpi",
            "schedule_kind",
            "cron",
            "interval_seconds",
            "source_kind",
            "data_source",
            "sql",
            "http_path",
            "json_path",
            "calculation",
            "timeout_seconds",
            "max_retries",
            "enabled",
            "next_run_at",
            "created_at",
            "updated_at",
        ]


class JobWriteSerializer(StrictSerializer):
    kpi = serializers.PrimaryKeyRelatedField(queryset=KPI.objects.select_related("initiative"))
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    cron = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    interval_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=366 * 86400
    )
    source_kind = serializers.ChoiceField(choices=SourceKind.choices)
    data_source = serializers.PrimaryKeyRelatedField(
        queryset=DataSource.objects.all(), required=False, allow_null=True
    )
    sql = serializers.CharField(max_length=20_000, required=False, allow_blank=True, default="")
    http_path = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    json_path = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    calculation = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=3600, default=30)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, default=2)
    enabled = serializers.BooleanField(default=True)


class JobUpdateSerializer(JobWriteSerializer):
    kpi = None  # type: ignore[assignment]


class RunRequestSerializer(StrictSerializer):
    trigger = serializers.ChoiceField(choices=["manual", "trial"], default="manual")


class RunAcceptedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    run = serializers.IntegerField()
    state = serializers.CharField()
    url = serializers.CharField()
