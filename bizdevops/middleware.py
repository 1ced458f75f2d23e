from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_htmx.http import reswap, retarget

from bizdevops.errors import DomainError
from bizdevops.models import Preference


class DomainErrorMiddleware:
    """A rule that refuses an action a page did not expect to be refused (say, removing a
    member of an initiative that was cancelled meanwhile) gets a friendly page with 400/409,
    never a server error. Views still turn expected refusals into form errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError) or request.path.startswith("/api/"):
            return None
        if getattr(request, "htmx", False):
            # An htmx request swaps a fragment into the page: put the reason in the page's
            # message area instead of nesting a whole error page where the fragment goes.
            response = render(
                request,
                "_messages_error.html",
                {"reason": exception.message},
                status=exception.status_code,
            )
            return reswap(retarget(response, "#messages"), "innerHTML")
        return render(
            request, "refused.html", {"reason": exception.message}, status=exception.status_code
        )


SESSION_TIME_ZONE = "bizdevops_time_zone"


def time_zone_valid(name: str) -> bool:
    return name in available_time_zones()


@functools.cache
def available_time_zones() -> frozenset[str]:
    # Read from the system's tz database once (a directory walk each time otherwise).
    return frozenset(zoneinfo.available_timezones())


def remember_time_zone(request: HttpRequest, name: str) -> None:
    """What the middleware reads for this session from now on (after a save)."""
    request.session[SESSION_TIME_ZONE] = [request.user.pk, name]


def _chosen_time_zone(request: HttpRequest, user: Any) -> str:
    """The user's time zone name ("": the default) without a query of its own: the
    preference is selected with the user (`bizdevops.backends.PreferenceBackend`); for a
    session that a backend without it signed in, it is read once and kept in the session."""
    if "preference" in user._state.fields_cache:
        preference = user._state.fields_cache["preference"]
        return preference.time_zone if preference is not None else ""
    cached = request.session.get(SESSION_TIME_ZONE) if hasattr(request, "session") else None
    if isinstance(cached, list) and len(cached) == 2 and cached[0] == user.pk:
        return str(cached[1])
    name = Preference.objects.filter(user=user.pk).values_list("time_zone", flat=True).first() or ""
    if hasattr(request, "session"):
        remember_time_zone(request, name)
    return name


class TimeZoneMiddleware:
    """Activates the signed-in user's time zone (their Preference; settings.TIME_ZONE without
    one) for the request: every time the pages show is in it, at no extra query."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        name = ""
        if user is not None and user.is_authenticated:
            name = _chosen_time_zone(request, user)
        if name and time_zone_valid(name):
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
