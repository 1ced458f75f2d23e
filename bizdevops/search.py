"""The global search of the navigation: `/search/?q=` (and `GET /api/v1/search/?q=`).

This package sits below the apps, so it cannot ask them itself: each app registers a provider
(`initiatives`, `kpis`, `jobs`, from their selectors, imported by their AppConfig.ready). A
provider answers with at most `limit` hits the user may see (through the app's
`..._visible_to` door) in one query, and whether there were more. docs/search.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser

# Hits shown per group: enough to find a thing by a few words, bounded whatever matches.
PER_GROUP = 10
MIN_LENGTH = 2
MAX_LENGTH = 200
MAX_TERMS = 8


@dataclass(frozen=True)
class Hit:
    title: str
    url: str
    detail: str = ""


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    more: bool  # more matched than were listed


@dataclass(frozen=True)
class Group:
    kind: str
    label: str
    hits: list[Hit]
    more: bool


Provider = Callable[[str, "AnyUser", int], Found]


@dataclass(frozen=True)
class _Registered:
    kind: str
    label: str
    order: int
    provider: Provider


_providers: dict[str, _Registered] = {}


def provider(kind: str, *, label: str, order: int) -> Callable[[Provider], Provider]:
    """Register a search provider (a decorator): `kind` names its group ("initiatives"),
    `order` places the group on the page. Registering a kind again replaces it (a module
    imported twice, a test's stand-in)."""

    def register(function: Provider) -> Provider:
        _providers[kind] = _Registered(kind, label, order, function)
        return function

    return register


def terms(query: str) -> list[str]:
    """The words of a query (letters, digits, hyphens inside a word as in `BDO-12`), at most
    MAX_TERMS of them: what the providers match, never operators a user typed."""
    return re.findall(r"\w+(?:-\w+)*", query)[:MAX_TERMS]


def clean(query: str) -> str:
    return " ".join(query.split())[:MAX_LENGTH]


def search(query: str, user: AnyUser, *, limit: int = PER_GROUP) -> list[Group]:
    """Every registered provider's hits for the query, in their order; one query each."""
    query = clean(query)
    if len(query) < MIN_LENGTH or not terms(query):
        return []
    groups = []
    for entry in sorted(_providers.values(), key=lambda entry: entry.order):
        found = entry.provider(query, user, limit)
        groups.append(Group(entry.kind, entry.label, found.hits[:limit], found.more))
    return groups


@login_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    query = clean(request.GET.get("q", ""))
    groups = search(query, request.user)
    return render(
        request,
        "search.html",
        {
            "q": query,
            "groups": groups,
            "too_short": bool(query) and len(query) < MIN_LENGTH,
            "found": any(group.hits for group in groups),
            "min_length": MIN_LENGTH,
            "per_group": PER_GROUP,
        },
    )
