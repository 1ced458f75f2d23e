from __future__ import annotations

from typing import Any

from rest_framework import serializers

from bizdevops.api import AwareDateTimeField, StrictSerializer
from bizdevops.errors import DomainError
from kpis.models import KPI, MAX_DECIMALS, Direction
from kpis.selectors import CALENDAR_BUCKETS
from kpis.services import measurement_check

NUMBER = {"required": False, "allow_null": True}


class KPISerializer(serializers.ModelSerializer):
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
            "decimals",
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
    decimals = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_DECIMALS,
        help_text="Digits shown after the decimal point; null: from the unit.",
    )


class KPIUpdateSerializer(KPIWriteSerializer):
    initiative = None


class MeasurementIn(StrictSerializer):
    as_of = AwareDateTimeField()
    value = serializers.FloatField()

    def validate_value(self, value: float) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise serializers.ValidationError("A finite number is required.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The service's bounds, checked here too so a list push names every item at fault.
        try:
            measurement_check(as_of=attrs["as_of"], value=attrs["value"])
        except DomainError as error:
            raise serializers.ValidationError({error.field: [error.message]}) from None
        return attrs


class PushResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class MeasurementQuerySerializer(serializers.Serializer):
    from_ = AwareDateTimeField(required=False)
    to = AwareDateTimeField(required=False)
    bucket = serializers.ChoiceField(choices=list(CALENDAR_BUCKETS), required=False)
    cursor = serializers.CharField(required=False, max_length=500)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=5000)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
