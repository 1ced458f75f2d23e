"""The portfolio KPI overview (`/kpis/`): what each KPI row shows (status, latest value
against target, sparkline from the rollups, change in the KPI's direction), grouping and
order (worst first), the filters in the URL, the counts at the top, paging, visibility, a
constant number of queries whatever the number of KPIs, and the stakeholder's start page."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import Initiative
from kpis import overview, services
from kpis.models import KPI, Measurement, Origin
from kpis.rollups import rollups_rebuild
from tests.factories import BusinessUnitFactory, make_initiative
from tests.helpers import HTMX, html, queries

pytestmark = pytest.mark.django_db


def record(kpi: KPI, ago: dt.timedelta, value: float) -> None:
    services.measurement_record(kpi=kpi, as_of=timezone.now() - ago, value=value, origin=Origin.API)


def row(content: str, kpi: KPI) -> tuple[str, str]:
    """(data-health, inner HTML) of the KPI's row."""
    match = re.search(
        rf'<tr class="overview-row" data-kpi="{kpi.pk}" data-health="(\w+)"[^>]*>(.*?)</tr>',
        content,
        re.S,
    )
    assert match, f"no row for KPI {kpi.pk}"
    return match[1], match[2]


def order(content: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr class="overview-row" data-kpi="(\d+)"', content)]


def define(initiative: Initiative, pm: Any, name: str, **values: Any) -> KPI:
    values.setdefault("unit", "%")
    values.setdefault("target", 90)
    values.setdefault("warning_threshold", 80)
    values.setdefault("critical_threshold", 50)
    return services.kpi_define(initiative=initiative, user=pm, name=name, **values)


@pytest.fixture
def kpis(initiative: Initiative, pm: Any) -> dict[str, KPI]:
    """Four KPIs of one initiative: critical, warning, healthy, no value."""
    made = {
        "critical": define(initiative, pm, "Recall"),
        "warning": define(initiative, pm, "Precision"),
        "healthy": define(initiative, pm, "Coverage"),
        "none": define(
            initiative,
            pm,
            "Latency",
            unit="ms",
            direction="lower",
            target=100,
            warning_threshold=150,
            critical_threshold=300,
        ),
    }
    record(made["critical"], dt.timedelta(minutes=5), 40.0)
    record(made["warning"], dt.timedelta(minutes=5), 72.72727)
    record(made["healthy"], dt.timedelta(days=29), 80.0)  # the sparkline's first day: warning
    record(made["healthy"], dt.timedelta(minutes=5), 95.0)
    return made


def test_rows_show_status_value_against_target_sparkline_and_change(
    client: Any, stakeholder: Any, kpis: dict[str, KPI]
) -> None:
    client.force_login(stakeholder)
    content = html(client.get("/kpis/"))

    health, body = row(content, kpis["warning"])
    assert health == "warning"
    assert "72.7 %" in body and "72.72" not in body  # to the KPI's precision (% : one digit)
    assert "90.0 %" in body and "higher is better" in body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", body)  # the time, with its zone

    health, body = row(content, kpis["healthy"])
    assert health == "healthy"
    assert '<svg class="sparkline"' in body and "<polyline" in body
    assert "+15.0 %" in body and "better than 30 days ago" in body

    health, body = row(content, kpis["none"])
    assert health == "unknown"
    assert body.lower().count("no value yet") == 1
    assert "The initiative is in Biz, not in Ops yet" in body
    assert "health-badge" not in body


def test_change_is_judged_in_the_kpis_direction(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any
) -> None:
    lower = define(
        initiative,
        pm,
        "Cost",
        unit="EUR",
        direction="lower",
        target=10,
        warning_threshold=20,
        critical_threshold=30,
    )
    record(lower, dt.timedelta(days=29), 5.0)
    record(lower, dt.timedelta(minutes=1), 8.0)
    client.force_login(stakeholder)

    _, body = row(html(client.get("/kpis/")), lower)

    assert "+3.00 EUR" in body and "worse than 30 days ago" in body
    assert 'class="change worse"' in body


def test_sparkline_reads_the_daily_rollups_not_the_raw_values(kpis: dict[str, KPI]) -> None:
    kpi = kpis["healthy"]
    Measurement.objects.filter(kpi=kpi).delete()
    record(kpi, dt.timedelta(hours=2), 95.0)  # in a whole hour: rolled up
    Measurement.objects.filter(kpi=kpi).delete()  # the raw values gone, the rollups kept
    now = timezone.now()

    points = overview.sparklines([kpi.pk], now)[kpi.pk]

    assert [value for _, value in points] == [80.0, 95.0]
    assert (points[-1][0] - points[0][0]) % 86_400 == 0  # one point per UTC day


def test_grouped_by_unit_and_initiative_worst_first(
    client: Any, admin_user: Any, pm: Any, kpis: dict[str, KPI]
) -> None:
    calm_unit = BusinessUnitFactory(name="Aaa calm unit")  # first by name, but all healthy
    calm = define(make_initiative(pm, calm_unit, title="Calm"), pm, "Fine")
    record(calm, dt.timedelta(minutes=1), 99.0)
    client.force_login(admin_user)

    content = html(client.get("/kpis/"))

    assert order(content) == [
        kpis["critical"].pk,
        kpis["warning"].pk,
        kpis["none"].pk,
        kpis["healthy"].pk,
        calm.pk,
    ]
    units = re.findall(r'<h2 id="unit-\d+">([^<]+)</h2>', content)
    assert units == [kpis["critical"].initiative.business_unit.name, "Aaa calm unit"]


def test_counts_at_the_top_link_to_their_filter(
    client: Any, stakeholder: Any, kpis: dict[str, KPI]
) -> None:
    client.force_login(stakeholder)
    content = html(client.get("/kpis/"))

    counts = dict(
        re.findall(r'data-status="(\w+)" href="[^"]*"[^>]*>\s*<strong>(\d+)</strong>', content)
    )
    assert counts == {"critical": "1", "warning": "1", "stale": "0", "none": "1", "healthy": "1"}
    assert 'data-status="critical" href="/kpis/?status=critical"' in content

    filtered = html(client.get("/kpis/?status=critical"))
    assert order(filtered) == [kpis["critical"].pk]
    # The counts stay those of the whole set; the chosen one links back to all.
    assert 'data-status="critical" href="/kpis/" aria-current="true"' in filtered


def test_filters_by_unit_phase_status_and_text_in_the_url(
    client: Any, admin_user: Any, pm: Any, kpis: dict[str, KPI]
) -> None:
    other_unit = BusinessUnitFactory(name="Payments")
    elsewhere = define(make_initiative(pm, other_unit, title="Chargebacks"), pm, "Disputes")
    client.force_login(admin_user)
    unit = kpis["critical"].initiative.business_unit

    assert order(html(client.get(f"/kpis/?unit={other_unit.pk}"))) == [elsewhere.pk]
    assert elsewhere.pk not in order(html(client.get(f"/kpis/?unit={unit.pk}")))
    assert order(html(client.get("/kpis/?phase=ops"))) == []
    assert len(order(html(client.get("/kpis/?phase=biz")))) == 5
    assert order(html(client.get("/kpis/?q=chargeb"))) == [elsewhere.pk]
    assert order(html(client.get("/kpis/?q=latency"))) == [kpis["none"].pk]
    key = kpis["none"].initiative.key
    assert len(order(html(client.get(f"/kpis/?q={key}")))) == 4
    assert order(html(client.get("/kpis/?status=none&q=disp"))) == [elsewhere.pk]
    # The form shows the filters it was given; nonsense is ignored, never an error.
    content = html(client.get(f"/kpis/?unit={other_unit.pk}&phase=nope&status=bad&page=x"))
    assert f'<option value="{other_unit.pk}" selected>' in content
    assert order(content) == [elsewhere.pk]


def test_htmx_gets_the_overview_partial(
    client: Any, stakeholder: Any, kpis: dict[str, KPI]
) -> None:
    client.force_login(stakeholder)
    response = client.get("/kpis/?status=warning", **HTMX)
    content = html(response)
    assert content.lstrip().startswith('<div id="overview">')
    assert "<html" not in content
    assert order(content) == [kpis["warning"].pk]
    assert "HX-Request" in response["Vary"]


def test_pages_are_bounded(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(overview, "PAGE_SIZE", 3)
    made = [define(initiative, pm, f"KPI {n}") for n in range(7)]
    client.force_login(stakeholder)

    first = html(client.get("/kpis/"))
    third = html(client.get("/kpis/?page=3"))

    assert len(order(first)) == 3 and "page 1 of 3" in first
    assert 'rel="next" href="/kpis/?page=2"' in first
    assert order(third) == [made[6].pk]
    assert 'rel="prev" href="/kpis/?page=2"' in third
    assert order(html(client.get("/kpis/?page=99"))) == [made[6].pk]  # the last page


def test_a_stakeholder_sees_only_the_kpis_of_their_units(
    client: Any, make_user: Any, pm: Any, kpis: dict[str, KPI]
) -> None:
    payments = BusinessUnitFactory(name="Payments")
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
    payments.stakeholders.add(outsider)
    theirs = define(make_initiative(pm, payments, title="Chargebacks"), pm, "Disputes")
    client.force_login(outsider)

    content = html(client.get("/kpis/"))

    assert order(content) == [theirs.pk]
    assert kpis["critical"].initiative.business_unit.name not in content
    # A unit that is not theirs filters to nothing rather than showing its KPIs.
    assert (
        order(html(client.get(f"/kpis/?unit={kpis['critical'].initiative.business_unit_id}"))) == []
    )


def _kpis_with_history(initiative: Initiative, pm: Any, count: int, start: int) -> None:
    now = timezone.now()
    for n in range(start, start + count):
        kpi = define(initiative, pm, f"Bulk {n}")
        Measurement.objects.bulk_create(
            Measurement(
                kpi=kpi,
                as_of=now - dt.timedelta(days=d, minutes=1),
                value=70 + d,
                origin=Origin.API,
            )
            for d in range(0, 40, 3)
        )
        rollups_rebuild([kpi.pk])


def test_query_count_does_not_grow_with_kpis(
    client: Any, stakeholder: Any, initiative: Initiative, pm: Any, ops_job: Any
) -> None:
    """3 KPIs and 30 (with values, sparklines, a job that may be stale): the same queries."""
    client.force_login(stakeholder)
    _kpis_with_history(initiative, pm, 3, 0)
    client.get("/kpis/")  # the session's first request may differ (it is not counted)
    few = queries(client, "/kpis/")

    _kpis_with_history(initiative, pm, 27, 3)
    content = html(client.get("/kpis/"))
    assert len(order(content)) == KPI.objects.count() >= 30
    many_ = queries(client, "/kpis/")

    assert many_ == few
    # An empty page skips its two reads.
    assert queries(client, "/kpis/?status=stale&q=bulk") <= few


def test_kpis_nav_and_a_stakeholders_home_lead_to_the_overview(
    client: Any, stakeholder: Any, pm: Any
) -> None:
    client.force_login(stakeholder)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/kpis/"
    content = html(client.get("/kpis/"))
    assert '<a href="/kpis/" aria-current="page">KPIs</a>' in content
    assert 'href="/dashboards/"' in content  # the unit dashboards stay one link away
    assert html(client.get("/?mine=1"))  # their own initiatives stay reachable

    client.force_login(pm)
    assert client.get("/").status_code == 200  # others keep "My initiatives"
