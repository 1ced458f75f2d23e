from __future__ import annotations

from rest_framework import serializers

from bizdevops.api import StrictSerializer
from initiatives.models import Phase, Status
from phases.models import Decision


class CriterionStateSerializer(serializers.Serializer):
    code = serializers.CharField(source="state.criterion.code")
    title = serializers.CharField(source="state.criterion.title")
    kind = serializers.CharField(source="state.criterion.kind")
    satisfied = serializers.BooleanField(source="state.satisfied")
    explanation = serializers.CharField(source="state.explanation")
    ticked_by = serializers.CharField(
        source="state.tick.ticked_by.username", allow_null=True, default=None
    )
    ticked_at = serializers.DateTimeField(
        source="state.tick.ticked_at", allow_null=True, default=None
    )
    note = serializers.CharField(source="state.tick.note", allow_null=True, default=None)
    can_tick = serializers.BooleanField()


class GateSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    from_phase = serializers.ChoiceField(choices=Phase.choices)
    to_phase = serializers.ChoiceField(choices=Phase.choices)


class GatePanelSerializer(serializers.Serializer):
    gate = GateSerializer(allow_null=True)
    all_met = serializers.BooleanField()
    criteria = CriterionStateSerializer(many=True, source="rows")
    decisions = serializers.ListField(child=serializers.ChoiceField(choices=Decision.choices))


class TickWriteSerializer(StrictSerializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    evidence_url = serializers.URLField(required=False, allow_blank=True, max_length=500)


class DecisionWriteSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    rationale = serializers.CharField(max_length=10_000)
    from_phase = serializers.ChoiceField(
        choices=Phase.choices,
        required=False,
        help_text=(
            "The phase the decider saw. When the initiative has left it (someone decided "
            "meanwhile), 409 with code `stale` and nothing is recorded. Send it: two clients "
            "recycling at once would otherwise move the initiative back two phases."
        ),
    )


class DecisionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=Decision.choices)
    rationale = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by.username")
    decided_at = serializers.DateTimeField()
    from_phase = serializers.ChoiceField(choices=Phase.choices)
    to_phase = serializers.ChoiceField(choices=Phase.choices)
    from_status = serializers.ChoiceField(choices=Status.choices)
    to_status = serializers.ChoiceField(choices=Status.choices)
    phase = serializers.ChoiceField(choices=Phase.choices, source="to_phase")
    status = serializers.ChoiceField(choices=Status.choices, source="to_status")


class TimelineEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    title = serializers.CharField()
    detail = serializers.CharField()
