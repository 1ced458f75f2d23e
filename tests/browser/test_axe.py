"""Accessibility: axe-core (vendored, static/vendor/axe-core) on every page of the table of
tests/browser/pages.py at 1366 × 900 and at 390 × 844, and in the dark theme
(prefers-color-scheme: dark) for the pages tagged "dark": no serious or critical violation.

Each page is checked once per width, as the first role of AXE_ROLES that may see it (the
admin sees every form a PM and an engineer see): an axe run costs about a second, and every
role on every page took over seven minutes for the same findings. BIZDEVOPS_AXE_ALL_ROLES=1
checks every role on every page.

axe is loaded as a <script src> from the app's own static files, which the
Content-Security-Policy allows ('self'): the app's CSP stays as it is (no bypass_csp)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import BROWSER_DB, TIMEOUT_MS
from tests.browser.pages import ANONYMOUS, Screen, portfolio, session_cookie, visits

pytestmark = [pytest.mark.browser, BROWSER_DB]

AXE = f"{settings.STATIC_URL}vendor/axe-core/axe.min.js"
FAILING = ("serious", "critical")
# Only violations are collected (not passes): several times faster on the big pages.
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary || ""})),
  }));
}"""

ALL_ROLES = os.environ.get("BIZDEVOPS_AXE_ALL_ROLES") == "1"
AXE_ROLES = ["admin", "pm", "data engineer", "business stakeholder", ANONYMOUS]
WIDTHS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1366, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}},
    "dark": {"viewport": {"width": 1366, "height": 900}, "color_scheme": "dark"},
    "dark phone": {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark"},
}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The live server runs in this process: nothing it enqueues reaches a broker."""
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "bizdevops.outbox.send", lambda name, args, options: messages.append((name, args))
    )
    return messages


def describe(where: str, violations: list[dict[str, Any]]) -> str:
    lines = [where]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            summary = " ".join(node["summary"].split())
            lines.append(f"      {node['target']}: {summary[:300]}")
        if len(v["nodes"]) > 5:
            lines.append(f"      ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(url=AXE)
    violations: list[dict[str, Any]] = page.evaluate(RUN_AXE)
    return [v for v in violations if v["impact"] in FAILING]


def axe_visits(data: Any, tag: str | None) -> dict[str, list[tuple[Screen, str]]]:
    table = visits(data, tag)
    if ALL_ROLES:
        return table
    chosen: dict[str, list[tuple[Screen, str]]] = {}
    done: set[str] = set()
    for role in AXE_ROLES + sorted(set(table) - set(AXE_ROLES)):
        for screen, url in table.get(role, []):
            if screen.name not in done:
                done.add(screen.name)
                chosen.setdefault(role, []).append((screen, url))
    return chosen


def _visit(page: Page, screen: Screen, url: str) -> str | None:
    response = page.goto(url)
    assert response is not None
    if response.status != screen.status:
        return f"answered {response.status}, not {screen.status}"
    expect(page.locator(screen.ready).first).to_be_visible()
    return None


def test_no_serious_accessibility_violation_on_any_page(
    browser: Browser, live_server: Any, sent: Any
) -> None:
    # One test for every width: the data is built once (a test of its own per width spent
    # most of its time rebuilding it).
    data = portfolio()
    problems: list[str] = []
    checked: dict[str, int] = {}
    for width, options in WIDTHS.items():
        tag = "dark" if width.startswith("dark") else None
        checked[width] = 0
        for role, screens in axe_visits(data, tag).items():
            context = browser.new_context(base_url=live_server.url, **options)
            context.set_default_timeout(TIMEOUT_MS)
            if role != ANONYMOUS:
                context.add_cookies([session_cookie(data.users[role], live_server.url)])  # type: ignore[list-item]
            page = context.new_page()
            for screen, url in screens:
                where = f"{width}, {role}: {screen.name} ({url})"
                refused = _visit(page, screen, url)
                if refused:
                    problems.append(f"{where}: {refused}")
                    continue
                violations = axe_violations(page)
                if violations:
                    problems.append(describe(where, violations))
                checked[width] += 1
            context.close()
    assert not problems, "axe-core found serious or critical violations:\n" + "\n".join(problems)
    assert min(checked.values()) >= 5, checked
    assert checked["desktop"] == checked["phone"] >= 20, checked
