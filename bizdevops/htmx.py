"""Page composition with htmx: the request type every view takes, whether a fragment is
wanted, and `Page`, a screen whose sections several apps fill.

The app that owns a screen makes one `Page`. An app above it that adds a section (the gate
panel of the initiative page comes from `phases`, its KPIs from `kpis`) registers a
contributor from its `AppConfig.ready`, so the owner never imports the apps above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from django.contrib.auth.models import User

UPDATE_TEMPLATE = "_page_update.html"

F = TypeVar("F", bound=Callable[..., HttpResponse])


class HtmxHttpRequest(HttpRequest):
    """A logged-in request (every view taking it is `login_required`) with htmx details."""

    htmx: HtmxDetails
    user: User


def partial_wanted(request: HtmxHttpRequest) -> bool:
    """An htmx request that swaps a fragment (a history restore wants the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def vary_on_htmx(view: F) -> F:
    """For views that answer a whole page or a fragment from the same URL: caches must keep
    the two apart (`Vary: HX-Request`)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response

    return wrapped  # type: ignore[return-value]


Contributor = Callable[[HtmxHttpRequest, Any, dict[str, Any]], dict[str, Any]]


class Page:
    """One screen about one object, rendered whole or as named partials.

    `lookup(key, user)` is the object's access door (404 for a user who may not see it);
    `url_name` reverses the screen's URL from the key. Contributors get the request, the
    object and the forms the view passes (bound forms with errors), and return context.
    """

    def __init__(self, *, template: str, url_name: str, lookup: Callable[[str, Any], Any]) -> None:
        self.template = template
        self.url_name = url_name
        self.lookup = lookup
        self._contributors: list[Contributor] = []

    def contributes(self, contributor: Contributor) -> Contributor:
        if contributor not in self._contributors:
            self._contributors.append(contributor)
        return contributor

    def context(self, request: HtmxHttpRequest, obj: Any, **forms: Any) -> dict[str, Any]:
        context: dict[str, Any] = {}
        for contributor in self._contributors:
            context.update(contributor(request, obj, forms))
        return context

    def render(
        self,
        request: HtmxHttpRequest,
        obj: Any,
        *,
        part: str | None = None,
        also: Iterable[str] = (),
        status: int = 200,
        **forms: Any,
    ) -> HttpResponse:
        """The whole screen; for htmx, the partial `part` plus out-of-band updates of
        `also` and the messages."""
        context = self.context(request, obj, **forms)
        if part and partial_wanted(request):
            context["parts"] = [f"{self.template}#{part}"]
            context["oob_parts"] = [f"{self.template}#{name}" for name in also]
            response = render(request, UPDATE_TEMPLATE, context, status=status)
        else:
            response = render(request, self.template, context, status=status)
        patch_vary_headers(response, ("HX-Request",))
        return response

    def after_action(
        self,
        request: HtmxHttpRequest,
        key: str,
        *,
        part: str,
        also: Iterable[str] = (),
        reload: bool = False,
    ) -> HttpResponse:
        """Post/redirect/get without JavaScript; with htmx, the changed parts (or a full
        reload when the change touches the whole screen)."""
        url = reverse(self.url_name, kwargs={"key": key})
        if not request.htmx:
            return redirect(f"{url}#{part}")
        if reload:
            return HttpResponseClientRedirect(url)
        return self.render(request, self.lookup(key, request.user), part=part, also=also)
