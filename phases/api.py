"""REST endpoints for the gate, ticks, decisions and the history of an initiative."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from initiatives.selectors import initiative_get
from phases import selectors, services
from phases.serializers import (
    DecisionSerializer,
    DecisionWriteSerializer,
    GatePanelSerializer,
    TickWriteSerializer,
    TimelineEventSerializer,
)


def _panel_data(request: Request, key: str) -> dict[str, object]:
    initiative = initiative_get(key, request.user)
    panel = selectors.gate_panel(initiative, request.user)
    return GatePanelSerializer(
        {
            "gate": panel.gate,
            "all_met": bool(panel.rows) and not panel.unmet,
            "rows": panel.rows,
            "decisions": [d.value for d in panel.decisions],
        }
    ).data


class Gate(APIView):
    @extend_schema(responses=GatePanelSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(_panel_data(request, key))


class CriterionTick(APIView):
    @extend_schema(request=TickWriteSerializer, responses=GatePanelSerializer)
    def put(self, request: Request, key: str, code: str) -> Response:
        initiative = initiative_get(key, request.user)
        criterion = selectors.criterion_get(code)
        serializer = TickWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.criterion_tick(
            initiative=initiative,
            criterion=criterion,
            user=request.user,
            **serializer.validated_data,
        )
        return Response(_panel_data(request, key))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str, code: str) -> Response:
        initiative = initiative_get(key, request.user)
        criterion = selectors.criterion_get(code)
        services.criterion_untick(initiative=initiative, criterion=criterion, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DecisionList(APIView):
    @extend_schema(
        request=DecisionWriteSerializer,
        responses={
            201: DecisionSerializer,
            409: OpenApiResponse(description="The gate is not met (unmet criteria codes)."),
        },
    )
    def post(self, request: Request, key: str) -> Response:
        initiative = initiative_get(key, request.user)
        serializer = DecisionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = services.gate_decide(
            initiative=initiative,
            user=request.user,
            **serializer.validated_data,
        )
        return Response(DecisionSerializer(record).data, status=status.HTTP_201_CREATED)


class History(APIView):
    @extend_schema(responses=TimelineEventSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        initiative = initiative_get(key, request.user)
        return Response(TimelineEventSerializer(selectors.timeline(initiative), many=True).data)
