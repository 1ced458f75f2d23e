"""The KPI dashboard in a real browser, as a business stakeholder: the unit's tiles, then an
initiative's trends, a range switched through htmx (the uPlot chart is drawn again from the
swapped-in JSON, without a reload), and the CSV export downloaded.

Nothing here sends Celery messages: the values are written with measurement_record (no
alert), and the task senders are replaced anyway so that a message could not reach the
development broker from the live server, which runs in this process."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from initiatives.models import Initiative
from kpis import services
from kpis.models import KPI, Measurement, Origin
from tests.browser.conftest import BROWSER_DB, login

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Whatever would be sent to the workers (runs, alert mails, webhooks): nothing, here."""
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "bizdevops.outbox.send", lambda name, args, options: messages.append((name, args))
    )
    return messages


@pytest.fixture
def kpi(initiative: Initiative, pm: Any) -> KPI:
    return services.kpi_define(
        initiative=initiative,
        user=pm,
        name="Fraud caught",
        unit="%",
        target=90,
        warning_threshold=80,
        critical_threshold=50,
    )


@pytest.fixture
def measurements(kpi: KPI) -> list[Measurement]:
    """Hourly values over the last 24 hours (the last one a warning), and older ones."""
    now = timezone.now().replace(microsecond=0)
    recent = [
        services.measurement_record(
            kpi=kpi,
            as_of=now - dt.timedelta(hours=hours, minutes=5),
            value=70.0 + hours / 4,
            origin=Origin.RUN if hours % 2 else Origin.API,
        )
        for hours in range(23, -1, -1)
    ]
    for days in (2, 3, 5):
        services.measurement_record(
            kpi=kpi, as_of=now - dt.timedelta(days=days), value=95.0, origin=Origin.API
        )
    return recent


def chart_points(page: Page, kpi: KPI) -> Any:
    return page.evaluate(
        "id => { const d = JSON.parse(document.getElementById(id).textContent);"
        " return {points: d.points.length, span: d.end - d.start,"
        " count: d.points.reduce((n, p) => n + p[4], 0)}; }",
        f"chart-data-{kpi.pk}",
    )


def test_stakeholder_follows_the_dashboard_switches_the_range_and_downloads_csv(
    page: Page,
    stakeholder: Any,
    kpi: KPI,
    measurements: list[Measurement],
    sent: list[tuple[str, Any]],
    tmp_path: Path,
) -> None:
    initiative = kpi.initiative
    login(page, "stakeholder", "pw")

    # The KPI menu leads to the portfolio KPI overview (#13), which links the unit
    # dashboards; a stakeholder of one unit goes straight to that unit's dashboard.
    page.locator(".topnav").get_by_role("link", name="KPIs").click()
    expect(page).to_have_url(re.compile(r"/kpis/$"))
    page.get_by_role("link", name="Unit dashboards").click()
    expect(page).to_have_url(re.compile(rf"/dashboards/units/{initiative.business_unit_id}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Fraud: KPIs")
    tile = page.locator(f'.tile[data-kpi="{kpi.pk}"]')
    expect(tile).to_have_attribute("data-health", "warning")
    expect(tile.locator(".tile-value")).to_contain_text("70.0")  # % KPIs: one decimal
    expect(tile.locator(".health-badge")).to_have_text("Warning")

    page.get_by_role("link", name=f"{initiative.key} {initiative.title}").click()
    expect(page).to_have_url(re.compile(rf"/initiatives/{initiative.key}/dashboard/$"))
    block = page.locator(f"#chart-{kpi.pk}")
    chart = block.locator("[data-chart]")
    expect(chart.locator("canvas")).to_have_count(1)  # uPlot drew the 7-day trend
    seven_days = chart_points(page, kpi)
    assert seven_days["span"] == 7 * 86400
    assert seven_days["count"] == 24 + 3
    page.evaluate("window.__sameDocument = true")

    with page.expect_response(lambda r: f"/kpis/{kpi.pk}/chart/?range=24h" in r.url) as info:
        block.get_by_role("link", name="24h", exact=True).click()
    assert info.value.request.headers.get("hx-request") == "true"
    assert info.value.status == 200

    block = page.locator(f"#chart-{kpi.pk}")
    expect(block.get_by_role("link", name="24h", exact=True)).to_have_attribute(
        "aria-current", "true"
    )
    expect(block.get_by_role("link", name="7d", exact=True)).not_to_have_attribute(
        "aria-current", "true"
    )
    expect(block.locator("[data-chart] canvas")).to_have_count(1)  # drawn again after the swap
    day = chart_points(page, kpi)
    assert day["span"] == 86400
    assert 0 < day["points"] <= 500
    assert day["count"] == 24
    expect(block.locator(".chart-note")).to_contain_text(f"{day['points']} points")
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped, no page load

    with page.expect_download() as download_info:
        block.get_by_role("link", name="Download CSV (24h)").click()
    download = download_info.value
    assert download.suggested_filename == f"{initiative.key}-fraud-caught-24h.csv"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    content = target.read_bytes().decode()
    rows = list(csv.reader(io.StringIO(content)))
    assert content.startswith("as_of,value,origin\r\n")
    assert rows[0] == ["as_of", "value", "origin"]
    assert [(dt.datetime.fromisoformat(r[0]), float(r[1]), r[2]) for r in rows[1:]] == [
        (m.as_of, m.value, m.origin) for m in measurements
    ]
    assert sent == []
