"""Glue between pages and services: domain errors become form errors, and friendly error
pages for 403 / 404 / 500 (also with DEBUG on, unless DEBUG_PAGES)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django import forms
from django.core import signals
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.log import log_response
from django.views.decorators.http import require_http_methods

from bizdevops.errors import DomainError

T = TypeVar("T")

# A page with a form: shown by GET (and HEAD), sent by POST; other methods answer 405.
require_get_or_post = require_http_methods(["GET", "HEAD", "POST"])


def run_service(form: forms.Form, call: Callable[[], T]) -> T | None:
    """Call a service; a refusal becomes an error on the form (on the field it names when the
    form has that field), and None is returned so the view shows the form again."""
    try:
        return call()
    except DomainError as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        form.refusal = error  # type: ignore[attr-defined]
        return None


def refusal_status(form: forms.Form) -> int:
    """The status of a form shown again: 409 when the state refused it, else 400."""
    refusal = getattr(form, "refusal", None)
    return refusal.status_code if refusal is not None else 400


def _api_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return _api_error(403, "permission_denied", str(exception or "") or "Not allowed.")
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return _api_error(404, "not_found", "No such resource.")
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return _api_error(500, "server_error", "Something went wrong on our side.")
    return render(request, "500.html", status=500)


class FriendlyErrorPagesMiddleware:
    """With DEBUG on (`make run`) Django answers a 404 with its technical page (the URL
    patterns it tried) and an error with the traceback page. Unless DEBUG_PAGES is set,
    settings put this middleware in, and it answers with the handlers above instead, as in
    production. (403 needs nothing: Django always uses handler403.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # No URL pattern matched: the resolver's 404 became the technical page before any
        # middleware saw the exception. A view's own 404 responses (resolver_match set) stay.
        if response.status_code == 404 and request.resolver_match is None:
            friendly = page_not_found(request)
            # Django logged "Not Found" for the page it made: not a second time for this one.
            friendly._has_been_logged = getattr(response, "_has_been_logged", False)  # type: ignore[attr-defined]
            return friendly
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        if isinstance(exception, PermissionDenied):
            return None
        # What Django does for an uncaught exception, but the friendly page: the traceback
        # goes to the log (the console of `make run`), and the test client still re-raises.
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        # Logged once, with the traceback (marks the response so the handler does not again).
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
            exception=exception,
        )
        return response
