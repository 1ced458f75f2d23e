"""REST API plumbing shared by the apps: one error shape, pagination, strict serializers,
the token endpoint and the health check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from django.db import connection
from django.db.models import Func, IntegerField, QuerySet, Subquery
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from bizdevops import accounts, outbox
from bizdevops.errors import DomainError
from bizdevops.throttling import AnonRateThrottle


def validated(serializer_class: type, request: Any, **kwargs: Any) -> dict[str, Any]:
    """The request body checked by a serializer (a 400 with field messages otherwise)."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class _CountAll(Func):
    """`COUNT(*)` as a plain expression (the `Count` aggregate would add a GROUP BY); COUNT(*)
    rather than COUNT(id) so that an index on the filtered columns answers it alone."""

    template = "COUNT(*)"
    output_field = IntegerField()


# The column of a page's rows that carries the count of all of them (not a model field name).
_TOTAL = "rows_in_all_pages"
_PAGE_NUMBER_COUNTED_FIRST = 2**31


class _Rows:
    """What Django's paginator needs of a list (`count()`, slices), the slices read as plain
    rows of the columns shown; `counted` reads a slice and the count in one statement."""

    def __init__(self, queryset: QuerySet[Any], columns: Sequence[str]) -> None:
        self.queryset = queryset
        self.columns = columns
        self.ordered = queryset.ordered
        query = queryset.query
        # A plain filtered list: its count is COUNT(*) over the same WHERE. (DISTINCT,
        # GROUP BY, a combined or sliced query count otherwise: `count()` knows how.)
        self.counts_inline = not (
            query.distinct or query.group_by or query.combinator or query.is_sliced
        )

    def count(self) -> int:
        return self.queryset.count()

    def __getitem__(self, key: slice) -> list[dict[str, Any]]:
        return list(self.queryset.values(*self.columns)[key])

    def counted(self, key: slice) -> tuple[list[dict[str, Any]], int | None]:
        """The rows of the slice and the count of all rows (None when the slice is empty: an
        empty page carries no count). PostgreSQL and SQLite run the uncorrelated count
        subquery once per statement, as the raw `(SELECT count(*) ...)` would."""
        total = Subquery(self.queryset.order_by().values(n=_CountAll()))
        rows = list(self.queryset.values(*self.columns, **{_TOTAL: total})[key])
        count = None
        for row in rows:
            count = row.pop(_TOTAL)
        return rows, count


class _OneQueryPaginator(DjangoPaginator):
    """Django's paginator that, over `_Rows`, takes the count from the page's own statement.
    Only when the page comes back empty (past the end, or an empty list) is the count asked
    separately, so that the answer (the empty first page, or the 404 and its message) is
    Django's own. Page numbers that are not whole numbers from 1 are refused by Django's
    checks before any query."""

    def page(self, number: Any) -> Page:
        rows_of = self.object_list
        if not isinstance(rows_of, _Rows) or not rows_of.counts_inline or self.orphans:
            return super().page(number)
        if "count" in self.__dict__:
            return super().page(number)  # counted already (`page=last`)
        try:
            whole = int(number)
        except (TypeError, ValueError):
            whole = 0
        if isinstance(number, float) or not 1 <= whole <= _PAGE_NUMBER_COUNTED_FIRST:
            # Django's own refusals; and a page number so large that its offset could
            # overflow the database's integers: counted first, as Django does.
            return super().page(number)
        bottom = (whole - 1) * self.per_page
        rows, count = rows_of.counted(slice(bottom, bottom + self.per_page))
        if count is None:
            return super().page(number)  # empty: Django counts and answers as before
        self.__dict__["count"] = count  # the cached_property `count`, from the same statement
        return self._get_page(rows, self.validate_number(whole), self)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = _OneQueryPaginator

    def paginate_rows(
        self, queryset: QuerySet[Any], columns: Sequence[str], request: Any, view: Any = None
    ) -> list[dict[str, Any]] | None:
        """The page as `.values(*columns)` rows, with the count in the same statement (a
        subquery on `queryset` itself, so it runs without the joins that the columns shown
        need): one query per page, unless the page is empty (see _OneQueryPaginator)."""
        return self.paginate_queryset(_Rows(queryset, columns), request, view)


PAGINATION_PARAMETER = "pagination"


class CursorPages(CursorPagination):
    """Cursor pages in a fixed, unique order: no count query, no page skipped or repeated
    when rows arrive meanwhile."""

    page_size = api_settings.PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = Pagination.max_page_size

    def __init__(self, ordering: str) -> None:
        self.ordering = ordering

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        # DRF would follow `?ordering=`; a cursor over a field that is not unique may skip or
        # repeat rows, so the order is the list's own.
        if request.query_params.get(api_settings.ORDERING_PARAM):
            raise exceptions.ValidationError(
                {"ordering": ["Cursor pages keep their own order; drop ordering or cursor."]}
            )
        return (self.ordering,)


class PageOrCursorPagination(Pagination):
    """Page-number pages with a count by default (as always); cursor pages when the request
    asks with `?pagination=cursor` (the next and previous links keep asking). For long lists:
    a page deep in the list costs what the first does, and rows inserted while a client pages
    through are neither repeated nor make it skip any."""

    cursor_ordering = "id"
    cursor: CursorPages | None = None

    def wants_cursor(self, request: Any) -> bool:
        asked = request.query_params.get(PAGINATION_PARAMETER, "page")
        if asked not in ("page", "cursor"):
            raise exceptions.ValidationError({PAGINATION_PARAMETER: ['Use "page" or "cursor".']})
        return asked == "cursor" or "cursor" in request.query_params

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        if self.wants_cursor(request):
            self.cursor = CursorPages(self.cursor_ordering)
            return self.cursor.paginate_queryset(queryset, request, view)
        return super().paginate_queryset(queryset, request, view)

    def paginate_rows(
        self, queryset: QuerySet[Any], columns: Sequence[str], request: Any, view: Any = None
    ) -> list[dict[str, Any]] | None:
        if self.wants_cursor(request):
            self.cursor = CursorPages(self.cursor_ordering)
            # No count on cursor pages, so the rows are read as they are.
            return self.cursor.paginate_queryset(queryset.values(*columns), request, view)
        return super().paginate_rows(queryset, columns, request, view)

    def get_paginated_response(self, data: Any) -> Response:
        if self.cursor is not None:
            return self.cursor.get_paginated_response(data)
        return super().get_paginated_response(data)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        answer["required"] = ["results"]
        answer["properties"]["count"]["description"] = "Page-number pages only."
        return answer

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": PAGINATION_PARAMETER,
                "required": False,
                "in": "query",
                "description": (
                    '"cursor": cursor pages (next/previous links, no count, no page number); '
                    'default "page".'
                ),
                "schema": {"type": "string", "enum": ["page", "cursor"]},
            },
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "The position of a cursor page (from a next or previous link).",
                "schema": {"type": "string"},
            },
        ]


def iso_datetime(value: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    """A timestamp as DRF's DateTimeField writes it: ISO 8601 in `zone` (the current time
    zone, which the caller looks up once per list: the lookup costs more than the rest), UTC
    as "Z". For lists that build their rows without a serializer."""
    if not value:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return Response({"error": {"code": code, "message": message, **extra}}, status=status)


def _domain_error(exc: DomainError) -> Response:
    extra: dict[str, Any] = {}
    if exc.field:
        extra["fields"] = {exc.field: [exc.message]}
    unmet = getattr(exc, "unmet_codes", None)
    if unmet is not None:
        extra["unmet"] = unmet
    return _error(exc.status_code, exc.code, exc.message, **extra)


def _django_error(exc: Exception) -> Response | None:
    """Django's own request and validation errors, in the API's shape."""
    if isinstance(exc, RequestDataTooBig):
        return _error(413, "too_large", "The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return _error(400, "bad_request", "The request was refused as malformed.")
    if isinstance(exc, DjangoValidationError):
        # E.g. a forged pagination cursor whose position is not a valid value.
        return _error(400, "invalid", " ".join(exc.messages))
    return None


def _fields_of(detail: Any) -> Any:
    """Field → messages. The errors of a list body (per item index, as a dict or a list with
    an empty dict for each item that is fine) become "[index].field" → messages."""
    if isinstance(detail, list) and any(isinstance(item, dict) for item in detail):
        detail = {index: item for index, item in enumerate(detail) if item}
    if isinstance(detail, dict) and detail and all(isinstance(key, int) for key in detail):
        fields: dict[str, Any] = {}
        for index, item in detail.items():
            if isinstance(item, dict):
                fields.update({f"[{index}].{name}": errors for name, errors in item.items()})
            else:
                fields[f"[{index}]"] = item
        return fields
    return detail if isinstance(detail, dict) else {"non_field_errors": detail}


def _reshaped(exc: Exception, response: Response) -> Response:
    """DRF's answer to its own exceptions, in the API's shape."""
    if isinstance(exc, exceptions.ValidationError):
        detail = _fields_of(exc.detail)
        response.data = {
            "error": {"code": "invalid", "message": "Invalid input.", "fields": detail}
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "error": {
                "code": codes if isinstance(codes, str) else "error",
                "message": str(exc.detail),
            }
        }
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error in one shape: {"error": {"code", "message", "fields"?, "unmet"?}}."""
    if isinstance(exc, DomainError):
        return _domain_error(exc)
    answer = _django_error(exc)
    if answer is not None:
        return answer
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = drf_exception_handler(exc, context)
    return None if response is None else _reshaped(exc, response)


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (a typo must not pass silently)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """A timestamp with an explicit time zone; naive ones are refused, not guessed."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        given = value if isinstance(value, dt.datetime) else None
        if given is None and isinstance(value, str):
            try:
                given = parse_datetime(value.strip())
            except ValueError:
                given = None
        if given is not None and timezone.is_naive(given):
            self.fail("naive")
        return super().to_internal_value(value)

    default_error_messages = {
        **serializers.DateTimeField.default_error_messages,
        "naive": "Give a time zone, e.g. 2026-11-25T14:00:00Z or +01:00.",
    }


class TokenView(ObtainAuthToken):
    """POST username and password, get {"token": ...}. Throttled like every anonymous
    request (DRF's view turns throttling off), so passwords cannot be guessed at speed."""

    throttle_classes = [AnonRateThrottle]
    # DRF's view names its own parsers; this one takes bodies like every other endpoint
    # (the depth-limited JSON parser).
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    @extend_schema(
        auth=[],
        request=inline_serializer(
            "TokenRequest",
            {"username": serializers.CharField(), "password": serializers.CharField()},
        ),
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
        tags=["auth"],
    )
    def post(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            # django-axes counts this failure like one on the HTML login and flags the request
            # when the username or the client is locked out: say so instead of "wrong password".
            if getattr(request, "axes_locked_out", False):
                raise exceptions.Throttled(
                    wait=accounts.cooloff_seconds(),
                    detail=accounts.lockout_message(),
                    code="locked_out",
                ) from None
            raise


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 otherwise; with the outbox's pending
    messages and the age of the oldest. No authentication."""
    from bizdevops.celery import app

    state: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        state["database"] = "ok"
    except Exception as error:  # reported in the response, never hidden
        state["database"] = f"error: {type(error).__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        state["broker"] = "ok"
    except Exception as error:
        state["broker"] = f"error: {type(error).__name__}"
    healthy = all(value == "ok" for value in state.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", **state}
    if state["database"] == "ok":
        # Work not yet taken by the broker; informative, not a reason for 503 (the sweep
        # sends it once the broker is back).
        try:
            body["outbox"] = outbox.oldest_pending()
        except Exception as error:  # a database not migrated yet
            body["outbox"] = f"error: {type(error).__name__}"
    return JsonResponse(body, status=200 if healthy else 503)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="Field name → messages.")
    unmet = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Unmet gate criteria codes."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
