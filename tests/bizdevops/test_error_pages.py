"""With DEBUG on (`make run`) the friendly 404 / 500 pages answer, not Django's technical
pages, unless DEBUG_PAGES=1 (bizdevops.web.FriendlyErrorPagesMiddleware)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

ROOT = Path(__file__).resolve().parents[2]
FRIENDLY = "bizdevops.web.FriendlyErrorPagesMiddleware"


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom), path("", include("bizdevops.urls"))]
handler403 = "bizdevops.web.permission_denied"
handler404 = "bizdevops.web.page_not_found"
handler500 = "bizdevops.web.server_error"


def _middleware_of(**env: str) -> list[str]:
    """The MIDDLEWARE the settings build from this environment (a fresh interpreter)."""
    environment = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DEBUG_PAGES"}}
    environment.update(env)
    out = subprocess.run(  # noqa: S603  (our own settings module)
        [
            sys.executable,
            "-c",
            "import json; from bizdevops import settings; print(json.dumps(settings.MIDDLEWARE))",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_settings_choose_the_friendly_pages_unless_debug_pages() -> None:
    assert FRIENDLY in _middleware_of(DEBUG="1")
    assert FRIENDLY not in _middleware_of(DEBUG="1", DEBUG_PAGES="1")
    # Without DEBUG Django itself uses the handlers; the middleware is not needed.
    assert FRIENDLY not in _middleware_of(DEBUG="0", SECRET_KEY="x" * 50)


@pytest.fixture
def debug_on(settings: Any) -> Any:
    settings.DEBUG = True
    settings.ROOT_URLCONF = __name__
    if FRIENDLY not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(middleware.index("bizdevops.middleware.DomainErrorMiddleware"), FRIENDLY)
        settings.MIDDLEWARE = middleware
    return settings


def test_unknown_address_shows_the_friendly_404(client: Any, pm: Any, debug_on: Any) -> None:
    client.force_login(pm)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Not found" in body
    assert "Using the URLconf" not in body  # the technical page lists the URL patterns
    assert "Keys look like" in body


def test_missing_initiative_shows_the_friendly_404(client: Any, pm: Any, debug_on: Any) -> None:
    client.force_login(pm)
    response = client.get("/initiatives/BDO-999/")
    assert response.status_code == 404
    assert "Keys look like" in response.content.decode()
    assert "Raised by:" not in response.content.decode()


def test_api_404_stays_json(client: Any, pm: Any, debug_on: Any) -> None:
    client.force_login(pm)
    response = client.get("/api/v1/no-such/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_error_shows_the_friendly_500_and_is_logged(pm: Any, debug_on: Any, caplog: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(pm)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert "Traceback" not in body
    assert any("Internal Server Error: /boom/" in r.getMessage() for r in caplog.records)


def test_debug_pages_shows_django_technical_404(client: Any, pm: Any, settings: Any) -> None:
    settings.DEBUG = True
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != FRIENDLY]
    client.force_login(pm)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Using the URLconf" in response.content.decode()
