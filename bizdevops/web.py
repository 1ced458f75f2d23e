"""Glue between pages and services: domain errors become form errors, and friendly error
pages for 403 / 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
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
