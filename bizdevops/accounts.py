"""Login throttling (django-axes): who a client is, and the page a locked-out client sees."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

LOCKED_OUT_MESSAGE = "Too many failed sign-ins."


def client_ip(request: HttpRequest) -> str | None:
    """The client address, decided exactly as the API throttles decide it
    (REST_FRAMEWORK["NUM_PROXIES"], from API_NUM_PROXIES): REMOTE_ADDR with no proxy, else the
    address the nearest trusted proxy appended to X-Forwarded-For. Anything that is not an IP
    address (a proxy that passes the client's header through) falls back to REMOTE_ADDR."""
    ident = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address((ident or "").strip()))
    except ValueError:
        return request.META.get("REMOTE_ADDR")


def cooloff_seconds() -> int | None:
    cooloff = settings.AXES_COOLOFF_TIME
    return None if cooloff is None else int(cooloff.total_seconds())


def lockout_message() -> str:
    seconds = cooloff_seconds()
    if seconds is None:
        return f"{LOCKED_OUT_MESSAGE} Ask an administrator to unlock the account."
    return f"{LOCKED_OUT_MESSAGE} Please try again in {_duration(seconds)}."


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the site's own page, 429 with Retry-After for the cool-off."""
    seconds = cooloff_seconds()
    response = render(
        request,
        "registration/locked_out.html",
        {
            "cooloff": None if seconds is None else _duration(seconds),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
        },
        status=429,
    )
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
