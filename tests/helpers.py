"""Helpers shared by the page tests (fixtures live in the conftest.py files)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext


def missing_service(reason: str) -> None:
    """Skip a test whose service (PostgreSQL, Redis, a PostgreSQL extension) is missing; in CI
    (.ci/run sets BIZDEVOPS_REQUIRE_SERVICES=1) fail it instead, so CI never passes without."""
    if os.environ.get("BIZDEVOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required: BIZDEVOPS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


HTMX = {"HTTP_HX_REQUEST": "true"}
FORBIDDEN = "You may not do this"  # the friendly 403 page
NOT_FOUND = "There is no such page or initiative"  # the friendly 404 page


def html(response: Any, status: int = 200) -> str:
    """The body of a page response, checking its status (the start of the body if not)."""
    content = response.content.decode()
    assert response.status_code == status, content[:3000]
    return content


def section(content: str, dom_id: str) -> str:
    """The `<section id=...>` of the page with that id (sections do not nest here)."""
    match = re.search(rf'<section[^>]*\bid="{dom_id}"[^>]*>.*?</section>', content, re.S)
    assert match is not None, f"no section #{dom_id}"
    return match.group(0)


def is_oob(content: str, dom_id: str) -> bool:
    """The section with that id comes as an htmx out-of-band update."""
    return re.search(rf'<section[^>]*\bid="{dom_id}"[^>]*hx-swap-oob="true"', content) is not None


def counted_get(client: Any, url: str, data: Any = None, **extra: Any) -> tuple[int, Any]:
    """GET a URL that must answer 200: (the number of SQL queries it ran, the response)."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, data, **extra)
        assert response.status_code == 200, getattr(response, "content", b"")[:3000]
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)  # a streamed body reads as it is sent
    return len(captured), response


def queries(client: Any, url: str, **extra: Any) -> int:
    """The number of SQL queries a GET of a page runs (it must answer 200)."""
    return counted_get(client, url, **extra)[0]


def page_of(initiative: Any, tail: str = "") -> str:
    """The URL of an initiative's page, or of one of its actions (`tail`: "edit/", ...)."""
    return f"/initiatives/{initiative.key}/{tail}"


def clear_cache() -> None:
    """Forget the cache entries of this test run (the throttle counters). On Redis only the
    keys under this run's prefix go: the same database may hold the Celery broker's queues,
    which a FLUSHDB (`cache.clear()`) would wipe."""
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    if isinstance(cache, RedisCache):
        assert cache.key_prefix, "a shared Redis needs a key prefix"
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()
