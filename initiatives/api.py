"""REST endpoints for business units, initiatives, team, handovers and iterations. Every
write is the same service call the pages make."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import PageOrCursorPagination, validated
from bizdevops.lists import FormOnce, LeanListAPIView
from initiatives import selectors, services
from initiatives.filters import InitiativeApiFilter
from initiatives.models import BusinessUnit, Initiative
from initiatives.permissions import can_create_initiative, can_manage_units
from initiatives.serializers import (
    INITIATIVE_COLUMNS,
    BusinessUnitSerializer,
    BusinessUnitWriteSerializer,
    HandoverSerializer,
    HandoverWriteSerializer,
    InitiativeSerializer,
    InitiativeUpdateSerializer,
    InitiativeWriteSerializer,
    IterationSerializer,
    IterationWriteSerializer,
    MemberSerializer,
    MemberWriteSerializer,
    initiative_row,
)


class BusinessUnitList(generics.ListAPIView):
    serializer_class = BusinessUnitSerializer
    queryset = BusinessUnit.objects.none()  # for the schema; get_queryset gives the user's
    filterset_fields: list[str] = []
    ordering_fields = ["name", "id"]

    def get_queryset(self) -> Any:
        units = selectors.business_units_visible_to(self.request.user)
        return units.prefetch_related("stakeholders")

    @extend_schema(request=BusinessUnitWriteSerializer, responses={201: BusinessUnitSerializer})
    def post(self, request: Request) -> Response:
        can_manage_units.check(request.user)
        data = validated(BusinessUnitWriteSerializer, request)
        unit = services.business_unit_save(user=request.user, **data)
        return Response(BusinessUnitSerializer(unit).data, status=status.HTTP_201_CREATED)


class InitiativeListFilter(FormOnce, InitiativeApiFilter):
    pass


class InitiativeList(LeanListAPIView):
    serializer_class = InitiativeSerializer
    queryset = Initiative.objects.none()  # for the schema; get_queryset gives the user's
    filterset_class = InitiativeListFilter
    ordering_fields = ["id", "title", "phase", "status", "created_at", "updated_at"]
    pagination_class = PageOrCursorPagination
    columns = INITIATIVE_COLUMNS

    def get_queryset(self) -> Any:
        return selectors.initiatives_visible_to(self.request.user).order_by("id")

    def row(self, values: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
        return initiative_row(values, zone)

    @extend_schema(request=InitiativeWriteSerializer, responses={201: InitiativeSerializer})
    def post(self, request: Request) -> Response:
        # The role first: a refused user learns nothing from the validation of the body
        # (say, which business unit ids exist).
        can_create_initiative.check(request.user)
        data = validated(InitiativeWriteSerializer, request)
        initiative = services.initiative_create(user=request.user, **data)
        return Response(
            InitiativeSerializer(selectors.initiative_get(initiative.key, request.user)).data,
            status=status.HTTP_201_CREATED,
        )


class InitiativeDetail(APIView):
    @extend_schema(responses=InitiativeSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(InitiativeSerializer(selectors.initiative_get(key, request.user)).data)

    @extend_schema(request=InitiativeUpdateSerializer, responses=InitiativeSerializer)
    def patch(self, request: Request, key: str) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        data = validated(InitiativeUpdateSerializer, request, partial=True)
        services.initiative_update(initiative=initiative, user=request.user, **data)
        return Response(InitiativeSerializer(selectors.initiative_get(key, request.user)).data)


class Handover(APIView):
    @extend_schema(request=HandoverWriteSerializer, responses={201: HandoverSerializer})
    def post(self, request: Request, key: str) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        data = validated(HandoverWriteSerializer, request)
        handover = services.initiative_hand_over(
            initiative=initiative,
            to=data["to"],
            reason=data["reason"],
            user=request.user,
        )
        return Response(HandoverSerializer(handover).data, status=status.HTTP_201_CREATED)


class MemberList(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        return Response(MemberSerializer(selectors.team(initiative), many=True).data)

    @extend_schema(request=MemberWriteSerializer, responses={201: MemberSerializer})
    def post(self, request: Request, key: str) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        data = validated(MemberWriteSerializer, request)
        membership = services.member_add(
            initiative=initiative,
            member=data["user"],
            role=data["role"],
            user=request.user,
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str, member_id: int) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        membership = selectors.member_get(initiative, member_id)
        services.member_remove(membership=membership, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IterationList(APIView):
    @extend_schema(responses=IterationSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        initiative = selectors.initiative_get(key, request.user)
        return Response(IterationSerializer(selectors.iterations(initiative), many=True).data)

    @extend_schema(request=IterationWriteSerializer, responses={201: IterationSerializer})
    def post(self, request: Request, key: str) -> Response:
        initiative: Initiative = selectors.initiative_get(key, request.user)
        data = validated(IterationWriteSerializer, request)
        iteration = services.iteration_add(initiative=initiative, user=request.user, **data)
        return Response(IterationSerializer(iteration).data, status=status.HTTP_201_CREATED)
