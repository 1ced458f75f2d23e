from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from bizdevops.errors import DomainError


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
