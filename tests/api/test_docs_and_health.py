"""The published contract (/api/schema/), the offline API docs and /healthz."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

# The contract of README.md ("REST API"): every operation, (method, path) as in the schema.
CONTRACT = [
    ("post", "/api/v1/auth/token/"),
    ("get", "/api/v1/business-units/"),
    ("post", "/api/v1/business-units/"),
    ("get", "/api/v1/initiatives/"),
    ("post", "/api/v1/initiatives/"),
    ("get", "/api/v1/initiatives/{key}/"),
    ("patch", "/api/v1/initiatives/{key}/"),
    ("get", "/api/v1/initiatives/{key}/gate/"),
    ("put", "/api/v1/initiatives/{key}/criteria/{code}/"),
    ("delete", "/api/v1/initiatives/{key}/criteria/{code}/"),
    ("post", "/api/v1/initiatives/{key}/decisions/"),
    ("get", "/api/v1/initiatives/{key}/history/"),
    ("post", "/api/v1/initiatives/{key}/handover/"),
    ("get", "/api/v1/initiatives/{key}/members/"),
    ("post", "/api/v1/initiatives/{key}/members/"),
    ("delete", "/api/v1/initiatives/{key}/members/{member_id}/"),
    ("get", "/api/v1/initiatives/{key}/iterations/"),
    ("post", "/api/v1/initiatives/{key}/iterations/"),
    ("get", "/api/v1/kpis/"),
    ("post", "/api/v1/kpis/"),
    ("get", "/api/v1/kpis/{id}/"),
    ("patch", "/api/v1/kpis/{id}/"),
    ("delete", "/api/v1/kpis/{id}/"),
    ("get", "/api/v1/me/"),
    ("patch", "/api/v1/me/"),
    ("get", "/api/v1/kpis/{id}/measurements/"),
    ("post", "/api/v1/kpis/{id}/measurements/"),
    ("get", "/api/v1/data-sources/"),
    ("post", "/api/v1/data-sources/"),
    ("get", "/api/v1/jobs/"),
    ("post", "/api/v1/jobs/"),
    ("get", "/api/v1/jobs/{id}/"),
    ("patch", "/api/v1/jobs/{id}/"),
    ("post", "/api/v1/jobs/{id}/run/"),
    ("get", "/api/v1/jobs/{id}/runs/"),
    ("get", "/api/v1/runs/{id}/"),
    ("get", "/api/v1/search/"),
]
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
WRITES = {"post", "put", "patch"}


def _query_parameters(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def _expected_errors(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    """The error statuses an operation answers with whatever the data (README: "Every error
    has one shape ... 400 for bad input, 401, 403, 404, 409 ..., and 429 when throttled");
    403 and 409 depend on the role and the state and are left to test_schema_fuzz."""
    expected = {"429"}
    if path != "/api/v1/auth/token/":
        expected.add("401")  # TokenAuthentication comes first: 401 with WWW-Authenticate
    if method in WRITES or _query_parameters(operation):
        expected.add("400")
    if "{" in path or "page" in _query_parameters(operation):
        expected.add("404")  # unknown object, or a page past the end
    return expected


@pytest.fixture(scope="module")
def openapi(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return response.json()  # type: ignore[no-any-return]


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


# The schema -----------------------------------------------------------------------------------


def test_schema_is_openapi_3_with_every_operation_of_the_contract(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] == "BizDevOps API"
    published = {(method, path) for method, path, _ in _operations(openapi)}
    assert sorted(set(CONTRACT) - published) == [], "operations of the contract missing"
    assert sorted(published - set(CONTRACT)) == [], "operations the contract does not name"
    assert "/api/schema/" not in openapi["paths"]  # SERVE_INCLUDE_SCHEMA off
    token = openapi["components"]["securitySchemes"]["tokenAuth"]
    assert (token["type"], token["in"], token["name"]) == ("apiKey", "header", "Authorization")


def test_the_token_endpoint_needs_no_authentication(openapi: dict[str, Any]) -> None:
    """POST /api/v1/auth/token/ is how a client gets its first token: its security must allow
    an anonymous call (an empty requirement `{}`), or generated clients demand a token first."""
    security = openapi["paths"]["/api/v1/auth/token/"]["post"].get("security", [{}])
    assert {} in security, security


@pytest.mark.parametrize(("method", "path"), CONTRACT, ids=[f"{m} {p}" for m, p in CONTRACT])
def test_every_operation_has_request_and_response_schemas(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    operation = openapi["paths"][path][method]
    if method in WRITES:
        body = operation.get("requestBody", {}).get("content", {})
        assert "application/json" in body, f"{method} {path}: no JSON request body"
        assert body["application/json"].get("schema"), f"{method} {path}: no request schema"
    successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
    assert len(successes) == 1, f"{method} {path}: {sorted(operation['responses'])}"
    ((code, response),) = successes.items()
    if code == "204":
        assert "content" not in response
    else:
        assert response["content"]["application/json"]["schema"], f"{method} {path}"
    for name in re.findall(r"{(\w+)}", path):
        parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"}
        assert parameters[name]["required"] is True


def test_every_reference_resolves(openapi: dict[str, Any]) -> None:
    """A $ref to a missing component breaks Swagger UI, ReDoc and every client generator."""
    text = str(openapi)
    components = openapi["components"]["schemas"]
    refs = sorted(set(re.findall(r"#/components/schemas/(\w+)", text)))
    assert [name for name in refs if name not in components] == []


def test_every_operation_documents_its_errors(openapi: dict[str, Any]) -> None:
    """README: every error has one shape and is 400 (bad input), 401, 403, 404, 409 or 429.
    A status that is not in the schema fails strict clients and schemathesis
    (test_schema_fuzz.py::test_status_codes_are_documented)."""
    undocumented = {}
    for method, path, operation in _operations(openapi):
        missing = _expected_errors(method, path, operation) - set(operation["responses"])
        if missing:
            undocumented[f"{method.upper()} {path}"] = sorted(missing)
    assert undocumented == {}


def test_write_schemas_refuse_unknown_fields(openapi: dict[str, Any]) -> None:
    """README: "Unknown fields are refused" (StrictSerializer answers 400). The request
    schemas must say so (additionalProperties: false), or a request that is valid by the
    schema is refused."""
    lenient = []
    for method, path, operation in _operations(openapi):
        if path == "/api/v1/auth/token/" or method not in WRITES:
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        for variant in schema.get("oneOf", [schema]):
            if variant.get("type") == "array":
                variant = variant["items"]
            name = variant.get("$ref", "").rsplit("/", 1)[-1]
            # (A dangling $ref is test_every_reference_resolves' business.)
            resolved = openapi["components"]["schemas"].get(name, variant) if name else variant
            if resolved.get("additionalProperties", True) is not False:
                lenient.append(f"{method.upper()} {path} ({name or 'inline'})")
    assert lenient == []


# Swagger UI and ReDoc, offline -----------------------------------------------------------------


class _Assets(HTMLParser):
    """The URLs of <script src>, <link href> and <img src>, and inline script text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = True
            if found.get("src"):
                self.urls.append(found["src"] or "")
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")
        elif tag == "img" and found.get("src"):
            self.urls.append(found["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_are_html_with_local_assets_only(page: str) -> None:
    response = Client().get(page)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = _Assets()
    assets.feed(html)
    assert assets.urls, "no script or stylesheet at all"
    remote = [url for url in assets.urls if re.match(r"(https?:)?//", url)]
    assert remote == [], "assets from a CDN: the docs must work offline"
    for url in assets.urls:
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/").split("?")[0]), f"{url} is not shipped"
    # Nor does the page's own script load anything remote (e.g. a CDN worker or font).
    scripts = "\n".join(assets.inline)
    assert re.findall(r"https?://[^\s\"'`]+", scripts) == []
    assert "/api/schema/" in html


# /healthz --------------------------------------------------------------------------------------


@pytest.fixture
def broker_url() -> Iterator[Any]:
    """Point the Celery app at another broker for one test, and back afterwards."""
    from bizdevops.celery import app

    # broker_write_url stays None (it follows broker_url): restoring the value it read would
    # pin every later publish and ping of this process to this test's broker.
    before = app.conf.broker_url

    def point(url: str) -> None:
        app.conf.broker_url = url
        app.conf.broker_write_url = None

    yield point
    app.conf.broker_url, app.conf.broker_write_url = before, None
    assert app.conf.broker_url == before


@pytest.mark.django_db
@pytest.mark.redis
def test_healthz_is_200_when_the_database_and_redis_answer(broker_url: Any) -> None:
    broker_url(os.environ["REDIS_URL"])
    response = Client().get("/healthz")  # no credentials
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "outbox": {"pending": 0, "due": 0, "oldest_seconds": None},
    }


@pytest.mark.django_db
def test_healthz_is_503_with_the_broker_state_when_the_broker_is_down(broker_url: Any) -> None:
    broker_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = Client().get("/healthz")  # no credentials
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["broker"].startswith("error: "), body
    assert set(body) == {"status", "database", "broker", "outbox"}
