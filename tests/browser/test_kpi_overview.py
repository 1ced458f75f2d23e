"""The KPI overview and the trend charts in a real browser, as a business stakeholder: the
start page is the overview, a count filters it (the URL keeps the filter), a chart's range
lives in the page's URL (htmx pushes it; a reload keeps it), a custom from–to range with its
error, and the chart follows its container's width (ResizeObserver + uPlot setSize)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from initiatives.models import Initiative
from kpis import services
from kpis.models import KPI, Origin
from tests.browser.conftest import BROWSER_DB, login

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Nothing leaves for the workers from the live server (it runs in this process)."""
    messages: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "bizdevops.outbox.send", lambda name, args, options: messages.append((name, args))
    )
    return messages


@pytest.fixture
def kpis(initiative: Initiative, pm: Any) -> tuple[KPI, KPI]:
    warning = services.kpi_define(
        initiative=initiative,
        user=pm,
        name="Fraud caught",
        unit="%",
        target=90,
        warning_threshold=80,
        critical_threshold=50,
    )
    healthy = services.kpi_define(
        initiative=initiative,
        user=pm,
        name="Coverage",
        unit="%",
        target=90,
        warning_threshold=80,
        critical_threshold=50,
    )
    now = timezone.now()
    for hours in range(0, 24 * 20, 6):
        for kpi, value in ((warning, 72.72727), (healthy, 95.0)):
            services.measurement_record(
                kpi=kpi,
                as_of=now - dt.timedelta(hours=hours, minutes=5),
                value=value,
                origin=Origin.API,
            )
    return warning, healthy


def chart_span(page: Page, kpi: KPI) -> int:
    return int(
        page.evaluate(
            "id => { const d = JSON.parse(document.getElementById(id).textContent);"
            " return d.end - d.start; }",
            f"chart-data-{kpi.pk}",
        )
    )


def test_overview_filters_and_chart_range_in_the_url_custom_range_and_resize(
    page: Page, stakeholder: Any, kpis: tuple[KPI, KPI], sent: list[Any]
) -> None:
    warning, healthy = kpis
    login(page, "stakeholder", "pw")

    # A stakeholder lands on the overview; worst first; values to the KPI's precision.
    expect(page).to_have_url(re.compile(r"/kpis/$"))
    rows = page.locator("tr.overview-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-kpi", str(warning.pk))
    expect(rows.first.locator(".overview-value")).to_contain_text("72.7 %")
    expect(rows.first.locator("svg.sparkline polyline")).to_have_count(1)

    # A count filters, through htmx, and the URL keeps it.
    page.locator('.status-count[data-status="healthy"]').click()
    expect(page).to_have_url(re.compile(r"/kpis/\?status=healthy$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kpi", str(healthy.pk))
    page.reload()
    expect(page.locator("tr.overview-row")).to_have_count(1)

    # The chart range: pushed into the page's URL, kept by a reload.
    page.goto(f"/initiatives/{warning.initiative.key}/dashboard/")
    block = page.locator(f"#chart-{warning.pk}")
    expect(block.locator("[data-chart] canvas")).to_have_count(1)
    block.get_by_role("link", name="30d", exact=True).click()
    expect(page).to_have_url(re.compile(r"/dashboard/\?range=30d$"))
    expect(page.locator(f"#chart-{warning.pk} [data-chart] canvas")).to_have_count(1)
    assert chart_span(page, warning) == 30 * 86_400
    page.reload()
    expect(
        page.locator(f"#chart-{warning.pk}").get_by_role("link", name="30d", exact=True)
    ).to_have_attribute("aria-current", "true")
    assert chart_span(page, warning) == 30 * 86_400
    assert chart_span(page, healthy) == 30 * 86_400  # the range is the page's
    expect(page.locator(f"#chart-{warning.pk} .chart-note")).to_contain_text(
        "80 points: every value"
    )

    # A custom range, then a wrong one: a clear error, nothing pushed.
    block = page.locator(f"#chart-{warning.pk}")
    today = timezone.localdate()
    start, end = today - dt.timedelta(days=10), today - dt.timedelta(days=3)
    block.get_by_label("From").fill(start.isoformat())
    block.get_by_label("To").fill(end.isoformat())
    block.get_by_role("button", name="Show").click()
    expect(page).to_have_url(
        re.compile(rf"\?range=custom&from={start.isoformat()}&to={end.isoformat()}$")
    )
    expect(page.locator(f"#chart-{warning.pk} .csv-link")).to_contain_text(
        f"{start.isoformat()} – {end.isoformat()}"
    )
    assert chart_span(page, warning) == 8 * 86_400
    block = page.locator(f"#chart-{warning.pk}")
    block.get_by_label("From").fill(end.isoformat())
    block.get_by_label("To").fill(start.isoformat())
    block.get_by_role("button", name="Show").click()
    expect(page.locator(f"#chart-{warning.pk} [role=alert]")).to_have_text(
        "The end date must be after the start date."
    )
    expect(page).to_have_url(re.compile(rf"&to={end.isoformat()}$"))  # the valid one stays

    # The chart follows its container's width.
    canvas = page.locator(f"#chart-{healthy.pk} .uplot")
    wide = canvas.bounding_box()
    assert wide is not None
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function(
        "([sel, w]) => document.querySelector(sel).getBoundingClientRect().width < w",
        arg=[f"#chart-{healthy.pk} .uplot", wide["width"]],
    )
    narrow = canvas.bounding_box()
    assert narrow is not None and narrow["width"] <= 390
    assert sent == []
