"""The trend charts' range: in the page's URL (`?range=30d`, pushed by htmx so reload and
bookmarks keep it), a custom from–to range (validated, in the user's time zone), the caption
in plain words, and values and times to the KPI's precision and zone."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from typing import Any

import pytest
from django.utils import timezone

from bizdevops.preferences import preference_save
from kpis import selectors, services
from kpis.models import KPI, Origin
from kpis.views import caption
from tests.helpers import HTMX, html

pytestmark = pytest.mark.django_db


def chart_json(content: str, kpi: KPI) -> dict[str, Any]:
    match = re.search(
        rf'<script id="chart-data-{kpi.pk}" type="application/json">(.*?)</script>', content, re.S
    )
    assert match, f"no chart data for KPI {kpi.pk}"
    data: dict[str, Any] = json.loads(match[1])
    return data


@pytest.fixture
def kpi(ops_kpi: KPI) -> KPI:
    services.measurement_record(
        kpi=ops_kpi,
        as_of=timezone.now() - dt.timedelta(hours=3),
        value=72.72727,
        origin=Origin.API,
    )
    return ops_kpi


def test_the_range_in_the_page_url_is_kept(client: Any, stakeholder: Any, kpi: KPI) -> None:
    client.force_login(stakeholder)
    content = html(client.get(f"/initiatives/{kpi.initiative.key}/dashboard/?range=30d"))

    data = chart_json(content, kpi)
    assert data["end"] - data["start"] == 30 * 86_400
    assert re.search(r'btn-primary" aria-current="true"\s+hx-get="[^"]*range=30d"', content)
    assert f'href="/kpis/{kpi.pk}/export.csv?range=30d"' in content


def test_an_htmx_range_switch_pushes_the_pages_url(client: Any, stakeholder: Any, kpi: KPI) -> None:
    client.force_login(stakeholder)
    response = client.get(f"/kpis/{kpi.pk}/chart/?range=24h", **HTMX)

    html(response)
    assert response["HX-Push-Url"] == f"/initiatives/{kpi.initiative.key}/dashboard/?range=24h"


def test_a_custom_range_is_whole_days_in_the_users_time_zone(
    client: Any, stakeholder: Any, kpi: KPI
) -> None:
    preference_save(user=stakeholder, time_zone="Europe/Berlin")
    client.force_login(stakeholder)
    query = "range=custom&from=2026-11-01&to=2026-11-30"

    content = html(client.get(f"/initiatives/{kpi.initiative.key}/dashboard/?{query}"))

    data = chart_json(content, kpi)
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    assert data["start"] == int(dt.datetime(2026, 11, 1, tzinfo=berlin).timestamp())
    assert data["end"] == int(dt.datetime(2026, 12, 1, tzinfo=berlin).timestamp())  # to included
    assert data["tz"] == "Europe/Berlin"
    assert 'value="2026-11-01"' in content and 'value="2026-11-30"' in content
    assert f'href="/kpis/{kpi.pk}/export.csv?{query.replace("&", "&amp;")}"' in content
    assert "Download CSV (2026-11-01 – 2026-11-30)" in content

    response = client.get(f"/kpis/{kpi.pk}/chart/?{query}", **HTMX)
    html(response)
    assert response["HX-Push-Url"].endswith(f"/dashboard/?{query}")

    csv = client.get(f"/kpis/{kpi.pk}/export.csv?{query}")
    assert csv.status_code == 200
    assert "2026-11-01-to-2026-11-30.csv" in csv["Content-Disposition"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("from=2026-11-30&to=2026-11-01", "The end date must be after the start date."),
        ("from=2026-11-30&to=2026-11-30", "The end date must be after the start date."),
        ("from=2026-11-30", "This field is required."),
        ("from=yesterday&to=2026-11-30", "Enter a valid date."),
        ("from=1969-12-01&to=1970-01-02", "The start date must be 1970-01-01 or later."),
    ],
)
def test_a_bad_custom_range_is_a_clear_error(
    client: Any, stakeholder: Any, kpi: KPI, query: str, error: str
) -> None:
    client.force_login(stakeholder)

    page = html(
        client.get(f"/initiatives/{kpi.initiative.key}/dashboard/?range=custom&{query}"), 400
    )
    assert error in page and 'role="alert"' in page
    data = chart_json(page, kpi)
    assert data["end"] - data["start"] == 7 * 86_400  # the default range meanwhile

    response = client.get(f"/kpis/{kpi.pk}/chart/?range=custom&{query}", **HTMX)
    assert error in html(response, 400)
    assert "HX-Push-Url" not in response


def test_the_caption_speaks_plainly() -> None:
    def of(seconds: int, counts: list[int]) -> str:
        return caption(selectors.Series(seconds, [(0, 1.0, 1.0, 1.0, n) for n in counts]))

    assert of(3_600, [3, 4]) == "hourly averages"
    assert of(86_400, [30]) == "daily averages"
    assert of(5 * 3_600, [5]) == "averages of 5 hours"
    assert of(1_213, [20, 2]) == "averages of about 20 minutes"
    assert of(174, [1, 1, 0]) == "every value"
    assert of(60, [2]) == "averages of 60 seconds"


def test_values_and_times_are_shown_to_the_kpis_precision_and_zone(
    client: Any, stakeholder: Any, kpi: KPI, pm: Any
) -> None:
    client.force_login(stakeholder)
    content = html(client.get(f"/initiatives/{kpi.initiative.key}/dashboard/"))
    shown = re.sub(r"<script.*?</script>", "", content, flags=re.S)  # the chart's data: full
    assert "72.7 <span" in shown and "72.7272" not in shown
    assert chart_json(content, kpi)["decimals"] == 1
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>", content)

    services.kpi_update(kpi=kpi, user=pm, decimals=3)
    preference_save(user=stakeholder, time_zone="Europe/Berlin")
    client.force_login(stakeholder)  # a new session reads the new zone
    content = html(client.get(f"/initiatives/{kpi.initiative.key}/dashboard/"))
    assert "72.727 <span" in content
    assert chart_json(content, kpi)["decimals"] == 3
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d CET</time>", content)  # December: CET
    # The CSV keeps every digit.
    assert (
        "72.72727"
        in b"".join(client.get(f"/kpis/{kpi.pk}/export.csv?range=24h").streaming_content).decode()
    )
