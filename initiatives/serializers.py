from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from bizdevops.api import StrictSerializer, iso_datetime
from initiatives.models import (
    KEY_PREFIX,
    TIMEBOX_DEFAULT_WEEKS,
    TIMEBOX_MAX_WEEKS,
    TIMEBOX_MIN_WEEKS,
    BusinessUnit,
    Initiative,
    Iteration,
    Membership,
    TeamRole,
)

TEXT = {"required": False, "allow_blank": True, "max_length": 20_000}


class UsernameField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("queryset", get_user_model().objects.filter(is_active=True))
        super().__init__(slug_field="username", **kwargs)


class BusinessUnitSerializer(serializers.ModelSerializer):
    stakeholders = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = BusinessUnit
        fields = ["id", "name", "description", "stakeholders"]


class BusinessUnitWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(**TEXT)
    stakeholders = UsernameField(many=True, required=False)


class InitiativeSerializer(serializers.ModelSerializer):
    key = serializers.CharField(read_only=True)
    business_unit = serializers.SlugRelatedField(slug_field="name", read_only=True)
    business_unit_id = serializers.IntegerField(read_only=True)
    accountable = serializers.SlugRelatedField(slug_field="username", read_only=True)
    dev_days_left = serializers.IntegerField(read_only=True, allow_null=True)
    dev_overdue = serializers.BooleanField(read_only=True)
    kpi_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Initiative
        fields = [
            "key",
            "title",
            "business_unit",
            "business_unit_id",
            "accountable",
            "phase",
            "status",
            "dev_timebox_weeks",
            "dev_started_at",
            "dev_days_left",
            "dev_overdue",
            "business_problem",
            "business_requirements",
            "use_case",
            "algorithm_translation",
            "data_feasibility",
            "kpi_count",
            "created_at",
            "updated_at",
        ]


# What `initiative_row` reads: `InitiativeSerializer`'s fields as plain columns.
INITIATIVE_COLUMNS = (
    "id",
    "title",
    "business_unit__name",
    "business_unit_id",
    "accountable__username",
    "phase",
    "status",
    "dev_timebox_weeks",
    "dev_started_at",
    "business_problem",
    "business_requirements",
    "use_case",
    "algorithm_translation",
    "data_feasibility",
    "kpi_count",
    "created_at",
    "updated_at",
)


def initiative_row(values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """`InitiativeSerializer`'s JSON object of one initiative, from its `INITIATIVE_COLUMNS`
    (tests/api/test_lean_lists.py holds the two to the same bytes)."""
    # The model's own timebox rule, on a bare instance that holds only the fields the rule
    # reads (building a full model object per row costs more than the rest of the row).
    timebox = Initiative.__new__(Initiative)
    timebox.__dict__.update(
        phase=values["phase"],
        status=values["status"],
        dev_started_at=values["dev_started_at"],
        dev_timebox_weeks=values["dev_timebox_weeks"],
    )
    days_left = timebox.dev_days_left
    return {
        "key": f"{KEY_PREFIX}{values['id']}",
        "title": values["title"],
        "business_unit": values["business_unit__name"],
        "business_unit_id": values["business_unit_id"],
        "accountable": values["accountable__username"],
        "phase": values["phase"],
        "status": values["status"],
        "dev_timebox_weeks": values["dev_timebox_weeks"],
        "dev_started_at": iso_datetime(values["dev_started_at"], zone),
        "dev_days_left": days_left,
        "dev_overdue": timebox.dev_overdue,
        "business_problem": values["business_problem"],
        "business_requirements": values["business_requirements"],
        "use_case": values["use_case"],
        "algorithm_translation": values["algorithm_translation"],
        "data_feasibility": values["data_feasibility"],
        "kpi_count": values["kpi_count"],
        "created_at": iso_datetime(values["created_at"], zone),
        "updated_at": iso_datetime(values["updated_at"], zone),
    }


class InitiativeWriteSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200)
    business_unit = serializers.PrimaryKeyRelatedField(queryset=BusinessUnit.objects.all())
    accountable = UsernameField(required=False)
    dev_timebox_weeks = serializers.IntegerField(
        min_value=TIMEBOX_MIN_WEEKS, max_value=TIMEBOX_MAX_WEEKS, default=TIMEBOX_DEFAULT_WEEKS
    )
    business_problem = serializers.CharField(**TEXT)
    business_requirements = serializers.CharField(**TEXT)
    use_case = serializers.CharField(**TEXT)
    algorithm_translation = serializers.CharField(**TEXT)
    data_feasibility = serializers.CharField(**TEXT)


class InitiativeUpdateSerializer(InitiativeWriteSerializer):
    accountable = None  # type: ignore[assignment]  # changes only by a handover


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "joined_at"]


class MemberWriteSerializer(StrictSerializer):
    user = UsernameField()
    role = serializers.ChoiceField(choices=TeamRole.choices)


class HandoverWriteSerializer(StrictSerializer):
    to = UsernameField()
    reason = serializers.CharField(max_length=5000)


class HandoverSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    from_user = serializers.CharField(source="from_user.username")
    to_user = serializers.CharField(source="to_user.username")
    reason = serializers.CharField()
    handed_over_by = serializers.CharField(source="handed_over_by.username")
    at = serializers.DateTimeField()


class IterationSerializer(serializers.ModelSerializer):
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Iteration
        fields = [
            "number",
            "tried",
            "business_feedback",
            "happened_on",
            "recorded_by",
            "created_at",
        ]


class IterationWriteSerializer(StrictSerializer):
    tried = serializers.CharField(max_length=20_000)
    happened_on = serializers.DateField(required=False)
    business_feedback = serializers.CharField(**TEXT)
