"""GET /api/v1/search/?q=: the global search (bizdevops.search) as JSON. Apart from
bizdevops.search, which the apps' selectors import: this module loads DRF, whose settings
load the schema and API modules."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.search import MAX_LENGTH, MIN_LENGTH, PER_GROUP, clean, search, terms


class HitSerializer(serializers.Serializer):
    title = serializers.CharField()
    url = serializers.CharField(help_text="The page of the hit (a path on this site).")
    detail = serializers.CharField()


class GroupSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="initiatives, kpis or jobs")
    label = serializers.CharField()
    hits = HitSerializer(many=True)
    more = serializers.BooleanField(help_text="More matched than the hits listed.")


class ResultSerializer(serializers.Serializer):
    q = serializers.CharField()
    groups = GroupSerializer(many=True)


class SearchAPI(APIView):
    """GET /api/v1/search/?q=: what the search page shows, as JSON."""

    @extend_schema(
        operation_id="search",
        summary="Search initiatives, KPIs and jobs",
        description=(
            "The initiatives (by key, title, story), KPIs (by name) and jobs (by KPI name, "
            f"calculation, data source) the caller may see, at most {PER_GROUP} per group "
            "(docs/search.md)."
        ),
        parameters=[
            OpenApiParameter(
                "q",
                str,
                required=False,
                description=f"The words or a key (BDO-12); {MIN_LENGTH}-{MAX_LENGTH} characters "
                "(without q: no groups).",
            )
        ],
        responses={200: ResultSerializer},
    )
    def get(self, request: Request) -> Response:
        query = clean(str(request.query_params.get("q", "")))
        # No q asks nothing (an empty answer, as the page); a q that cannot be searched is a
        # 400 that says why.
        if query and (len(query) < MIN_LENGTH or not terms(query)):
            raise ValidationError(
                {"q": [f"At least {MIN_LENGTH} characters, with a letter or a digit."]}
            )
        groups = search(query, request.user)
        return Response(ResultSerializer({"q": query, "groups": groups}).data)
