"""The main pages under the Content-Security-Policy in a real browser: no violation (no
inline script, style or eval, htmx and uPlot included) and no request to another host (the
API docs too: Swagger UI, ReDoc and its former CDN logo)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, expect

from initiatives.models import Initiative
from kpis import services
from tests.browser.conftest import BROWSER_DB, login

pytestmark = [pytest.mark.browser, BROWSER_DB]

# Recorded before any page script runs (Playwright's init scripts are not subject to the CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


@pytest.fixture
def watched(context: BrowserContext, live_server: Any) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"console": [], "remote": []}
    local = urlsplit(live_server.url).netloc
    context.add_init_script(RECORD_VIOLATIONS)

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen["console"].append(message.text)

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != local:
            seen["remote"].append(request.url)

    context.on("console", on_console)
    context.on("request", on_request)
    return seen


def _visit(page: Page, url: str, seen: dict[str, list[str]], ready: str) -> None:
    page.goto(url)
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__cspViolations")
    assert violations == [], f"{url}: {violations}"
    assert seen["console"] == [], f"{url}: {seen['console']}"
    assert seen["remote"] == [], f"{url}: {seen['remote']}"


def test_the_main_pages_run_under_the_csp_and_fetch_nothing_remote(
    page: Page, watched: dict[str, list[str]], ops_initiative: Initiative, pm: Any
) -> None:
    kpi = ops_initiative.kpis.get(name="Fraud caught")
    now = timezone.now()
    for hours in range(6):
        services.measurement_record(
            kpi=kpi, as_of=now - dt.timedelta(hours=hours), value=80.0 + hours, origin="api"
        )
    key = ops_initiative.key

    _visit(page, "/accounts/login/", watched, "#id_username")
    login(page, "pm", "pw")
    for url, ready in [
        ("/", "main"),
        ("/board/", "main"),
        (f"/initiatives/{key}/", "main h1"),
        (f"/initiatives/{key}/dashboard/", "canvas"),  # uPlot draws from the JSON data
        ("/dashboards/", "main h1"),
        ("/ops/", "main h1"),
        ("/alerts/", "main h1"),
        ("/api/docs/", ".swagger-ui .information-container"),  # the init script ran
        ("/api/redoc/", "redoc h1, [role=menu]"),  # ReDoc rendered the schema
    ]:
        _visit(page, url, watched, ready)


def test_the_admin_runs_under_the_csp(
    page: Page, watched: dict[str, list[str]], initiative: Initiative, admin_user: Any
) -> None:
    _visit(page, "/admin/login/", watched, "#id_username")
    page.locator("#id_username").fill("admin")
    page.locator("#id_password").fill("pw")
    page.locator("input[type=submit]").click()
    for url in [
        "/admin/",
        "/admin/axes/accessattempt/",
        "/admin/initiatives/initiative/",
        f"/admin/initiatives/initiative/{initiative.pk}/change/",
        "/admin/auth/user/add/",
    ]:
        _visit(page, url, watched, "#content")
