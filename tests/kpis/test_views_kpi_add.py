"""Defining a KPI on the initiative page.
Who may do each action is tested in tests/test_page_permissions.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from initiatives.models import Initiative
from kpis.models import KPI
from tests.helpers import HTMX, html, is_oob, page_of, section

pytestmark = pytest.mark.django_db


# KPIs


def test_pm_defines_a_kpi(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {
        "name": "Fraud caught",
        "unit": "%",
        "direction": "higher",
        "target": "90",
        "warning_threshold": "80",
        "critical_threshold": "70",
        "description": "Share of fraud flagged",
    }
    response = client.post(page_of(initiative, "kpis/"), data)
    assert response.status_code == 302
    assert response["Location"] == page_of(initiative) + "#kpis"
    kpi = KPI.objects.get()
    assert (kpi.name, kpi.target, kpi.warning_threshold, kpi.critical_threshold) == (
        "Fraud caught",
        90,
        80,
        70,
    )
    content = html(client.get(response["Location"]))
    assert "Fraud caught" in section(content, "kpis")


def test_define_kpi_with_htmx(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {"name": "Fraud caught", "direction": "higher", "target": "90"}
    content = html(client.post(page_of(initiative, "kpis/"), data, **HTMX))
    assert content.lstrip().startswith('<section class="card" id="kpis"')
    assert "<html" not in content
    assert "Fraud caught" in section(content, "kpis")
    gate = section(content, "gate-panel")
    assert is_oob(content, "gate-panel")
    assert re.search(r'class="criterion met" data-code="success_kpi_with_target"', gate)


@pytest.mark.parametrize(
    ("direction", "target", "warning", "critical"),
    [("higher", "90", "95", "70"), ("lower", "5", "3", "10"), ("higher", "90", "60", "70")],
)
def test_bad_thresholds_show_the_error(
    client: Any,
    pm: Any,
    initiative: Initiative,
    direction: str,
    target: str,
    warning: str,
    critical: str,
) -> None:
    client.force_login(pm)
    data = {
        "name": "Fraud caught",
        "direction": direction,
        "target": target,
        "warning_threshold": warning,
        "critical_threshold": critical,
    }
    content = html(client.post(page_of(initiative, "kpis/"), data), 400)
    kpis = section(content, "kpis")
    assert "thresholds must satisfy" in kpis
    assert "<details open>" in kpis
    assert 'value="Fraud caught"' in kpis
    assert not KPI.objects.exists()

    content = html(client.post(page_of(initiative, "kpis/"), data, **HTMX), 400)
    assert content.lstrip().startswith('<section class="card" id="kpis"')
    assert "thresholds must satisfy" in content


def test_kpi_form_errors(client: Any, pm: Any, initiative: Initiative) -> None:
    client.force_login(pm)
    data = {"name": "", "direction": "sideways", "target": "a lot"}
    content = html(client.post(page_of(initiative, "kpis/"), data), 400)
    kpis = section(content, "kpis")
    assert "This field is required." in kpis
    assert "Enter a number." in kpis
    assert "Select a valid choice." in kpis
