"""KPI dashboards through the Django test client: unit dashboard tiles, the initiative's KPI
page with its htmx range buttons and chart JSON, CSV export, who may see which unit, and the
KPI health on board cards."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import BusinessUnit, Initiative
from kpis import services
from kpis.models import KPI, Measurement, Origin
from kpis.rollups import rollups_rebuild
from kpis.selectors import MAX_POINTS
from kpis.views import CSV_CHUNK_ROWS
from phases.models import Decision
from tests.factories import BusinessUnitFactory, decide, make_initiative
from tests.helpers import HTMX, html, queries

pytestmark = pytest.mark.django_db


def tile(content: str, kpi: KPI) -> tuple[str, str, str]:
    """(classes, data-health, inner HTML) of the KPI's tile."""
    match = re.search(
        rf'<article class="(?P<cls>tile[^"]*)" data-kpi="{kpi.pk}" data-health="(?P<health>\w+)">'
        r"(?P<body>.*?)</article>",
        content,
        re.S,
    )
    assert match, f"no tile for KPI {kpi.pk}"
    return match["cls"], match["health"], match["body"]


def chart_json(content: str, kpi: KPI) -> dict[str, Any]:
    match = re.search(
        rf'<script id="chart-data-{kpi.pk}" type="application/json">(.*?)</script>', content, re.S
    )
    assert match, f"no chart data for KPI {kpi.pk}"
    data: dict[str, Any] = json.loads(match[1])
    return data


def record(kpi: KPI, ago: dt.timedelta, value: float, origin: str = Origin.API) -> Measurement:
    return services.measurement_record(
        kpi=kpi, as_of=timezone.now() - ago, value=value, origin=origin
    )


def many(kpi: KPI, count: int, every: dt.timedelta, value: float = 1.0) -> None:
    """Test data in bulk (no rule of the services is under test here)."""
    now = timezone.now()
    Measurement.objects.bulk_create(
        Measurement(kpi=kpi, as_of=now - i * every, value=value + i % 7, origin=Origin.API)
        for i in range(1, count + 1)
    )
    rollups_rebuild([kpi.pk])  # written around the services: the long-range charts read these


@pytest.fixture
def thresholds(ops_kpi: KPI, pm: Any) -> KPI:
    """'Fraud caught' (%, higher is better, target 90): warning at 80, critical at 50."""
    return services.kpi_update(kpi=ops_kpi, user=pm, warning_threshold=80, critical_threshold=50)


@pytest.fixture
def other_unit(make_user: Any) -> BusinessUnit:
    """Payments, whose only stakeholder is stakeholder2 (no other role)."""
    unit = BusinessUnitFactory(name="Payments")
    unit.stakeholders.add(make_user(Role.BUSINESS_STAKEHOLDER, username="stakeholder2"))
    return unit


@pytest.fixture
def stakeholder2(other_unit: BusinessUnit) -> Any:
    return other_unit.stakeholders.get()


# Tiles


def test_tiles_show_value_unit_target_change_and_status(
    client: Any, stakeholder: Any, thresholds: KPI, pm: Any, unit: BusinessUnit
) -> None:
    lower = services.kpi_define(
        initiative=thresholds.initiative,
        user=pm,
        name="False alarms",
        unit="per day",
        direction="lower",
        target=5,
        warning_threshold=10,
        critical_threshold=20,
    )
    record(thresholds, dt.timedelta(minutes=30), 91.0)  # older: not shown
    record(thresholds, dt.timedelta(minutes=10), 85.0)  # previous
    record(thresholds, dt.timedelta(minutes=2), 72.0)  # latest: warning
    record(lower, dt.timedelta(minutes=3), 25.0)
    record(lower, dt.timedelta(minutes=1), 3.5)  # healthy
    client.force_login(stakeholder)

    content = html(client.get(f"/dashboards/units/{unit.pk}/"))

    assert f'data-key="{thresholds.initiative.key}"' in content
    cls, health, body = tile(content, thresholds)
    assert health == "warning" and "health-warning" in cls and "stale" not in cls
    assert "<h3>Fraud caught</h3>" in body
    assert re.search(r'72\.0 <span class="unit">%</span>', body)  # % KPIs: one decimal
    assert "Warning</span>" in body
    assert "▼ -13.0" in body  # against the previous value, 85
    assert "target 90.0 %" in body and "higher is better" in body
    assert "stale-badge" not in body

    cls, health, body = tile(content, lower)
    assert health == "healthy"
    assert re.search(r'3\.50 <span class="unit">per day</span>', body)
    assert "▼ -21.50" in body
    assert "target 5.00 per day" in body and "lower is better" in body
    assert "Healthy</span>" in body


def test_a_kpi_without_values_shows_no_value_yet_and_no_change(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any, unit: BusinessUnit
) -> None:
    kpi = services.kpi_define(initiative=initiative, user=pm, name="Churn", unit="%")
    client.force_login(stakeholder)

    content = html(client.get(f"/dashboards/units/{unit.pk}/"))

    cls, health, body = tile(content, kpi)
    assert health == "unknown"
    # Said once, and why: the initiative is still in Biz.
    assert body.lower().count("no value yet") == 1
    assert "The initiative is in Biz, not in Ops yet" in body
    assert "health-badge" not in body
    assert 'class="change"' not in body
    assert "stale" not in cls  # no job: never stale


def test_one_value_has_no_change_and_a_rise_shows_plus(
    client: Any, stakeholder: Any, thresholds: KPI, unit: BusinessUnit
) -> None:
    record(thresholds, dt.timedelta(minutes=2), 60.0)
    client.force_login(stakeholder)
    _, health, body = tile(html(client.get(f"/dashboards/units/{unit.pk}/")), thresholds)
    assert health == "warning"
    assert 'class="change"' not in body

    record(thresholds, dt.timedelta(minutes=1), 95.5)
    _, health, body = tile(html(client.get(f"/dashboards/units/{unit.pk}/")), thresholds)
    assert health == "healthy"
    assert "▲ +35.5" in body


def test_stale_kpi_is_shown_as_stale(
    client: Any, stakeholder: Any, thresholds: KPI, ops_job: Any, unit: BusinessUnit
) -> None:
    # The job runs every 5 minutes: the last value an hour ago is 12 periods old.
    record(thresholds, dt.timedelta(hours=1), 95.0)
    client.force_login(stakeholder)

    content = html(client.get(f"/dashboards/units/{unit.pk}/"))

    cls, health, body = tile(content, thresholds)
    assert "stale" in cls.split()
    assert 'class="badge stale-badge"' in body
    assert health == "healthy"

    record(thresholds, dt.timedelta(minutes=1), 96.0)
    cls, _, body = tile(html(client.get(f"/dashboards/units/{unit.pk}/")), thresholds)
    assert "stale" not in cls.split()
    assert "stale-badge" not in body


def test_an_ops_kpi_whose_job_never_produced_a_value_is_stale(
    client: Any, stakeholder: Any, ops_kpi: KPI, ops_job: Any, unit: BusinessUnit
) -> None:
    client.force_login(stakeholder)
    cls, health, body = tile(html(client.get(f"/dashboards/units/{unit.pk}/")), ops_kpi)
    assert health == "unknown"
    assert "stale-badge" in body and "stale" in cls.split()


def test_an_initiative_on_hold_is_not_flagged_stale(
    client: Any, stakeholder: Any, thresholds: KPI, ops_job: Any, unit: BusinessUnit, pm: Any
) -> None:
    record(thresholds, dt.timedelta(hours=1), 95.0)
    decide(thresholds.initiative, Decision.HOLD, pm)  # its jobs are not dispatched
    client.force_login(stakeholder)
    cls, _, body = tile(html(client.get(f"/dashboards/units/{unit.pk}/")), thresholds)
    assert "stale" not in cls.split() and "stale-badge" not in body


def test_unit_dashboard_query_count_does_not_grow_with_kpis_or_measurements(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any, unit: BusinessUnit
) -> None:
    second = make_initiative(pm, unit, title="Chargebacks")
    kpis = [
        services.kpi_define(initiative=initiative, user=pm, name="K0", unit="%"),
        services.kpi_define(initiative=second, user=pm, name="K1", unit="%"),
    ]
    for kpi in kpis:
        many(kpi, 300, dt.timedelta(minutes=5))
    client.force_login(stakeholder)
    url = f"/dashboards/units/{unit.pk}/"
    two = queries(client, url)

    for n in range(2, 10):
        kpi = services.kpi_define(
            initiative=(initiative, second)[n % 2], user=pm, name=f"K{n}", unit="%"
        )
        many(kpi, 300, dt.timedelta(minutes=5))
    content = html(client.get(url))
    assert content.count('class="tile ') == 10
    assert queries(client, url) == two


def test_initiative_page_query_count_does_not_grow_with_kpis_or_measurements(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any
) -> None:
    for n in range(2):
        many(
            services.kpi_define(initiative=initiative, user=pm, name=f"K{n}"),
            300,
            dt.timedelta(minutes=5),
        )
    client.force_login(stakeholder)
    url = f"/initiatives/{initiative.key}/dashboard/"
    two = queries(client, url)

    for n in range(2, 10):
        kpi = services.kpi_define(initiative=initiative, user=pm, name=f"K{n}")
        many(kpi, 300, dt.timedelta(minutes=5))
    content = html(client.get(url))
    assert content.count('data-chart="chart-data-') == 10
    assert queries(client, url) == two, "one more query per KPI on the initiative's KPI page"


# The initiative's KPI page and its range buttons (htmx)


def test_initiative_page_has_a_chart_per_kpi_with_range_buttons(
    client: Any, stakeholder: Any, thresholds: KPI
) -> None:
    many(thresholds, 100, dt.timedelta(hours=1), value=70)
    client.force_login(stakeholder)
    key, pk = thresholds.initiative.key, thresholds.pk

    content = html(client.get(f"/initiatives/{key}/dashboard/"))

    assert f'id="chart-{pk}"' in content
    flat = " ".join(content.split())
    for name in ("24h", "7d", "30d", "90d", "1y"):
        # A real link (no JavaScript) and an htmx swap of this chart only.
        assert f'<a href="?range={name}" class="btn btn-small' in flat
        assert f'hx-get="/kpis/{pk}/chart/?range={name}" hx-target="#chart-{pk}"' in flat
    assert 'btn-primary" aria-current="true"' in content  # the default range, 7d
    assert re.search(r'btn-primary" aria-current="true"\s+hx-get="[^"]*range=7d"', content)
    assert f'href="/kpis/{pk}/export.csv?range=7d"' in content
    data = chart_json(content, thresholds)
    assert (data["kpi"], data["unit"], data["target"]) == ("Fraud caught", "%", 90.0)
    assert (data["warning"], data["critical"]) == (80.0, 50.0)
    assert data["end"] - data["start"] == 7 * 86400
    assert 0 < len(data["points"]) <= MAX_POINTS
    assert sum(p[4] for p in data["points"]) == 100  # hours 1..100 ago: all in the 7 days
    assert '<script src="/static/js/charts.js" defer></script>' in content


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("24h", 86400),
        ("7d", 7 * 86400),
        ("30d", 30 * 86400),
        ("90d", 90 * 86400),
        ("1y", 365 * 86400),
    ],
)
def test_range_button_swaps_in_a_partial_with_the_chart_json(
    client: Any, stakeholder: Any, thresholds: KPI, name: str, seconds: int
) -> None:
    many(thresholds, 6000, dt.timedelta(minutes=90), value=60)  # 375 days, 1 per 90 minutes
    client.force_login(stakeholder)

    content = html(client.get(f"/kpis/{thresholds.pk}/chart/?range={name}", **HTMX))

    assert "<html" not in content and "topnav" not in content
    assert content.lstrip().startswith(f'<div class="chart-block" id="chart-{thresholds.pk}">')
    data = chart_json(content, thresholds)
    assert data["end"] - data["start"] == seconds
    assert 0 < len(data["points"]) <= MAX_POINTS
    in_range = Measurement.objects.filter(
        kpi=thresholds,
        as_of__gte=dt.datetime.fromtimestamp(data["start"], tz=dt.UTC),
    ).count()
    assert sum(p[4] for p in data["points"]) in (in_range, in_range - 1)  # second rounding
    assert f'?range={name}" download>Download CSV ({name})' in content
    assert re.search(rf'btn-primary" aria-current="true"\s+hx-get="[^"]*range={name}"', content)
    assert f'data-chart="chart-data-{thresholds.pk}"' in content


def test_an_unknown_range_is_the_default_seven_days(
    client: Any, stakeholder: Any, thresholds: KPI
) -> None:
    client.force_login(stakeholder)
    data = chart_json(
        html(client.get(f"/kpis/{thresholds.pk}/chart/?range=10y", **HTMX)), thresholds
    )
    assert data["end"] - data["start"] == 7 * 86400
    assert data["points"] == []


# CSV export


def test_csv_streams_exactly_the_measurements_of_the_range_in_order(
    client: Any, stakeholder: Any, thresholds: KPI, pm: Any
) -> None:
    other = services.kpi_define(initiative=thresholds.initiative, user=pm, name="Other")
    expected = [
        record(thresholds, dt.timedelta(days=3), 0.1 + 0.2),
        record(thresholds, dt.timedelta(days=6, hours=23), 81.0, origin=Origin.RUN),
        record(thresholds, dt.timedelta(hours=1), 77.25),
        record(thresholds, dt.timedelta(days=1), -4.0),
    ]
    record(thresholds, dt.timedelta(days=7, minutes=1), 1000.0)  # before the range
    # In the future (as far as a measurement may be): after the range.
    record(thresholds, -dt.timedelta(minutes=4), 2000.0)
    for ago in (1, 2, 3):
        record(other, dt.timedelta(days=ago), 3000.0)  # another KPI
    expected.sort(key=lambda m: m.as_of)
    client.force_login(stakeholder)

    with CaptureQueriesContext(connection) as before_reading:
        response = client.get(f"/kpis/{thresholds.pk}/export.csv?range=7d")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{thresholds.initiative.key}-fraud-caught-7d.csv"'
    )
    # Nothing was read from the measurements yet: rows come while the body is consumed.
    assert not any("kpis_measurement" in q["sql"] for q in before_reading.captured_queries)
    with CaptureQueriesContext(connection) as reading:
        body = b"".join(response.streaming_content).decode()
    assert any("kpis_measurement" in q["sql"] for q in reading.captured_queries)

    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["as_of", "value", "origin"]
    assert [(dt.datetime.fromisoformat(r[0]), float(r[1]), r[2]) for r in rows[1:]] == [
        (m.as_of, m.value, m.origin) for m in expected
    ]
    assert rows[1][1] == repr(expected[0].value)  # full precision
    assert "0.30000000000000004" in body


def test_csv_reads_the_rows_in_chunks_not_all_at_once(
    client: Any, stakeholder: Any, thresholds: KPI
) -> None:
    many(thresholds, 12_000, dt.timedelta(seconds=30))  # 30 s .. 100 h ago
    client.force_login(stakeholder)
    response = client.get(f"/kpis/{thresholds.pk}/export.csv?range=7d")
    assert isinstance(response, StreamingHttpResponse)
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"as_of,value,origin\r\n"
    first = next(chunks)
    assert first.count(b"\n") == CSV_CHUNK_ROWS  # a chunk of rows, written as it is read
    if connection.vendor == "postgresql":
        # The rows come from a server-side cursor, still open after the first row.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_cursors WHERE statement ILIKE %s", ["%kpis_measurement%"]
            )
            assert cursor.fetchone()[0] == 1
    rest = b"".join(chunks)
    assert CSV_CHUNK_ROWS + rest.count(b"\n") == 12_000


def test_csv_range_24h(client: Any, stakeholder: Any, thresholds: KPI) -> None:
    record(thresholds, dt.timedelta(hours=25), 1.0)
    kept = record(thresholds, dt.timedelta(hours=23), 2.0)
    client.force_login(stakeholder)
    response = client.get(f"/kpis/{thresholds.pk}/export.csv?range=24h")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [["as_of", "value", "origin"], [kept.as_of.isoformat(), "2.0", "api"]]
    assert response["Content-Disposition"].endswith('-24h.csv"')


# Who sees which unit


def test_a_stakeholder_of_another_unit_cannot_see_this_units_kpis(
    client: Any, stakeholder2: Any, thresholds: KPI, unit: BusinessUnit
) -> None:
    record(thresholds, dt.timedelta(hours=1), 70.0)
    client.force_login(stakeholder2)
    key, pk = thresholds.initiative.key, thresholds.pk

    for url in (
        f"/initiatives/{key}/dashboard/",
        f"/initiatives/{key}/dashboard/?range=24h",
        f"/kpis/{pk}/chart/?range=24h",
        f"/kpis/{pk}/export.csv?range=7d",
        f"/dashboards/units/{unit.pk}/",
    ):
        response = client.get(url, **HTMX) if "chart" in url else client.get(url)
        assert response.status_code == 404, url
        assert b"70.0" not in response.content


def test_dashboards_lists_only_the_stakeholders_units(
    client: Any, stakeholder2: Any, other_unit: BusinessUnit, unit: BusinessUnit
) -> None:
    client.force_login(stakeholder2)
    # One unit: straight to its dashboard, whose unit links do not include Fraud either.
    response = client.get("/dashboards/")
    assert response.status_code == 302
    assert response["Location"] == f"/dashboards/units/{other_unit.pk}/"
    content = html(client.get(response["Location"]))
    assert "Payments: KPIs" in content
    assert f"/dashboards/units/{unit.pk}/" not in content and ">Fraud<" not in content

    marketing = BusinessUnitFactory(name="Marketing")
    marketing.stakeholders.add(stakeholder2)
    content = html(client.get("/dashboards/"))
    assert f"/dashboards/units/{other_unit.pk}/" in content
    assert f"/dashboards/units/{marketing.pk}/" in content
    assert f"/dashboards/units/{unit.pk}/" not in content
    assert "Fraud" not in content


def test_the_units_own_stakeholder_and_other_roles_see_the_kpis(
    client: Any,
    stakeholder: Any,
    pm: Any,
    make_user: Any,
    thresholds: KPI,
    unit: BusinessUnit,
    other_unit: BusinessUnit,
) -> None:
    key, pk = thresholds.initiative.key, thresholds.pk
    urls = [
        f"/initiatives/{key}/dashboard/",
        f"/kpis/{pk}/chart/?range=24h",
        f"/kpis/{pk}/export.csv",
        f"/dashboards/units/{unit.pk}/",
    ]
    # A stakeholder who also has another role is not limited to their units.
    both = make_user(Role.BUSINESS_STAKEHOLDER, Role.DATA_SCIENTIST, username="both")
    other_unit.stakeholders.add(both)
    for user in (stakeholder, pm, both):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 200, (user, url)
    client.force_login(pm)
    content = html(client.get("/dashboards/"))
    assert f"/dashboards/units/{unit.pk}/" in content
    assert f"/dashboards/units/{other_unit.pk}/" in content


def test_dashboards_need_a_login(client: Any, thresholds: KPI, unit: BusinessUnit) -> None:
    for url in (
        "/dashboards/",
        f"/dashboards/units/{unit.pk}/",
        f"/initiatives/{thresholds.initiative.key}/dashboard/",
        f"/kpis/{thresholds.pk}/chart/",
        f"/kpis/{thresholds.pk}/export.csv",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")


def test_unknown_kpi_or_initiative_is_404(client: Any, stakeholder: Any) -> None:
    client.force_login(stakeholder)
    assert client.get("/kpis/999999/chart/").status_code == 404
    assert client.get("/kpis/999999/export.csv").status_code == 404
    assert client.get("/initiatives/BDO-999999/dashboard/").status_code == 404
    assert client.get("/dashboards/units/999999/").status_code == 404


# KPI health on board cards


def card(content: str, initiative: Initiative) -> str:
    match = re.search(
        rf'<article class="card initiative-card" data-key="{initiative.key}">(.*?)</article>',
        content,
        re.S,
    )
    assert match, f"no card for {initiative.key}"
    return match[1]


def test_board_cards_show_the_worst_kpi_health(
    client: Any, pm: Any, unit: BusinessUnit, thresholds: KPI
) -> None:
    critical_one = thresholds.initiative
    healthy = services.kpi_define(
        initiative=critical_one, user=pm, name="Uptime", warning_threshold=99, target=100
    )
    record(healthy, dt.timedelta(minutes=1), 99.9)
    record(thresholds, dt.timedelta(minutes=1), 50.0)  # exactly critical

    warning_one = make_initiative(pm, unit, title="Chargebacks")
    lower = services.kpi_define(
        initiative=warning_one,
        user=pm,
        name="Disputes",
        direction="lower",
        warning_threshold=10,
        critical_threshold=20,
    )
    services.kpi_define(initiative=warning_one, user=pm, name="No value yet")
    record(lower, dt.timedelta(minutes=1), 10.0)  # exactly warning

    healthy_one = make_initiative(pm, unit, title="Returns")
    fine = services.kpi_define(
        initiative=healthy_one, user=pm, name="Returns", critical_threshold=1
    )
    record(fine, dt.timedelta(minutes=1), 2.0)

    waiting = make_initiative(pm, unit, title="Loyalty")
    services.kpi_define(initiative=waiting, user=pm, name="Members")
    services.kpi_define(initiative=waiting, user=pm, name="Visits")
    no_kpi = make_initiative(pm, unit, title="Pricing")
    client.force_login(pm)

    content = html(client.get("/board/"))

    body = card(content, critical_one)
    assert 'class="kpi-health health-critical"' in body
    assert f'href="/initiatives/{critical_one.key}/dashboard/"' in body
    assert "Critical" in body
    body = card(content, warning_one)
    assert 'class="kpi-health health-warning"' in body and "Warning" in body
    body = card(content, healthy_one)
    assert 'class="kpi-health health-healthy"' in body and "Healthy" in body
    body = card(content, waiting)
    assert 'class="kpi-health muted"' in body and "2 KPIs" in body
    assert "health-" not in body
    body = card(content, no_kpi)
    assert "0 KPIs" in body and "health-" not in body

    # The start page uses the same cards.
    assert 'class="kpi-health health-critical"' in card(html(client.get("/")), critical_one)


def test_board_query_count_does_not_grow_with_kpis(
    client: Any, pm: Any, unit: BusinessUnit, initiative: Initiative
) -> None:
    second = make_initiative(pm, unit, title="Chargebacks")
    for target in (initiative, second):
        many(services.kpi_define(initiative=target, user=pm, name="K"), 50, dt.timedelta(hours=1))
    client.force_login(pm)
    two = queries(client, "/board/")
    for n in range(8):
        kpi = services.kpi_define(initiative=(initiative, second)[n % 2], user=pm, name=f"K{n}")
        many(kpi, 50, dt.timedelta(hours=1))
    assert queries(client, "/board/") == two
