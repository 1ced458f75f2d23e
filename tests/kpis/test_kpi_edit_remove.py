"""Editing a KPI (through `kpi_update`, as the API's PATCH) and removing one while its
initiative is in Biz, on the pages and through the API (#13). Who may do each is in
tests/test_page_permissions.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from initiatives.models import Initiative
from kpis import services
from kpis.models import KPI
from tests.api.helpers import authenticate
from tests.factories import decide
from tests.helpers import html, page_of, section

pytestmark = pytest.mark.django_db


@pytest.fixture
def kpi(ready_initiative: Initiative) -> KPI:
    return ready_initiative.kpis.get(name="Fraud caught")


def _edit(kpi: KPI) -> str:
    return f"/kpis/{kpi.pk}/edit/"


def _remove(kpi: KPI) -> str:
    return f"/kpis/{kpi.pk}/remove/"


def test_the_initiative_page_links_edit_and_in_biz_remove(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    client.force_login(pm)
    kpis = section(html(client.get(page_of(ready_initiative))), "kpis")
    assert f'href="{_edit(kpi)}"' in kpis
    assert f'href="{_remove(kpi)}"' in kpis
    dev = decide(ready_initiative, "go", pm)
    kpis = section(html(client.get(page_of(dev))), "kpis")
    assert f'href="{_edit(kpi)}"' in kpis
    assert f'href="{_remove(kpi)}"' not in kpis


def test_a_stakeholder_sees_no_kpi_actions(
    client: Any, stakeholder: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    client.force_login(stakeholder)
    kpis = section(html(client.get(page_of(ready_initiative))), "kpis")
    assert _edit(kpi) not in kpis and _remove(kpi) not in kpis
    assert client.get(_edit(kpi)).status_code == 403


def test_the_pm_edits_a_kpi_through_the_definition_service(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative, monkeypatch: Any
) -> None:
    client.force_login(pm)
    form = html(client.get(_edit(kpi)))
    assert re.search(r'<input type="text" name="name" value="Fraud caught"', form)
    assert 'value="90.0"' in form or 'value="90"' in form
    for field in services.KPI_FIELDS:  # every field of the definition is on the form
        assert f'name="{field}"' in form, field

    calls: list[dict[str, Any]] = []
    real = services.kpi_update

    def recorded(**kwargs: Any) -> KPI:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "kpi_update", recorded)
    data = {"name": "Fraud caught", "unit": "%", "direction": "higher", "target": "95"}
    data |= {"warning_threshold": "80", "critical_threshold": "70", "description": ""}
    response = client.post(_edit(kpi), data)
    assert response.status_code == 302
    assert response["Location"] == f"{page_of(ready_initiative)}#kpis"
    kpi.refresh_from_db()
    assert (kpi.target, kpi.warning_threshold, kpi.critical_threshold) == (95, 80, 70)
    # Only the changed fields go to the service.
    assert {k for k in calls[0] if k not in ("kpi", "user")} == {
        "target",
        "warning_threshold",
        "critical_threshold",
    }


def test_a_refused_definition_is_a_field_error(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"name": "Fraud caught", "direction": "higher", "target": "90"}
    data |= {"warning_threshold": "95"}  # above the target: higher is better
    content = html(client.post(_edit(kpi), data), 400)
    assert "the thresholds must satisfy critical ≤ warning ≤ target" in content
    kpi.refresh_from_db()
    assert kpi.warning_threshold is None


def test_an_engineer_on_the_team_edits_in_dev(
    client: Any, pm: Any, engineer: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    decide(ready_initiative, "go", pm)
    client.force_login(engineer)
    data = {"name": "Fraud share", "unit": "%", "direction": "higher", "target": "90"}
    assert client.post(_edit(kpi), data).status_code == 302
    kpi.refresh_from_db()
    assert kpi.name == "Fraud share"


def test_a_closed_initiative_offers_no_edit(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    decide(ready_initiative, "kill", pm)
    client.force_login(pm)
    assert client.get(_edit(kpi)).status_code == 403
    assert client.get(_remove(kpi)).status_code == 403


def test_remove_in_biz_asks_then_removes(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    client.force_login(pm)
    page = html(client.get(_remove(kpi)))
    assert "Remove KPI “Fraud caught”?" in page
    assert '<button type="submit" class="btn btn-danger">Remove KPI</button>' in page
    response = client.post(_remove(kpi))
    assert response.status_code == 302
    assert response["Location"] == f"{page_of(ready_initiative)}#kpis"
    assert not KPI.objects.filter(pk=kpi.pk).exists()
    assert "KPI “Fraud caught” removed." in html(client.get(page_of(ready_initiative)))


def test_remove_outside_biz_is_refused_with_a_reason(
    client: Any, pm: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    dev = decide(ready_initiative, "go", pm)
    client.force_login(pm)
    page = html(client.get(_remove(kpi)))
    assert f"KPIs are removed only in Biz; {dev.key} is in Dev." in page
    assert "btn-danger" not in page
    content = html(client.post(_remove(kpi)), 409)
    assert "KPIs are removed only in Biz" in content
    assert KPI.objects.filter(pk=kpi.pk).exists()


def test_a_kpi_with_values_stays(
    pm: Any, engineer: Any, kpi: KPI, ready_initiative: Initiative
) -> None:
    services.measurement_record(kpi=kpi, as_of=timezone.now(), value=1.0, origin="api")
    with pytest.raises(services.ConflictError, match="has values or a job"):
        services.kpi_remove(kpi=kpi, user=pm)
    assert KPI.objects.filter(pk=kpi.pk).exists()


# The API: PATCH (existing) and DELETE, with the same rules.


def test_api_delete_in_biz_and_refused_elsewhere(
    pm: Any, stakeholder: Any, kpi: KPI, ready_initiative: Initiative, pm_kpi_other: KPI
) -> None:
    api = authenticate(APIClient(), stakeholder)
    assert api.delete(f"/api/v1/kpis/{kpi.pk}/").status_code == 403
    api = authenticate(APIClient(), pm)
    assert api.delete(f"/api/v1/kpis/{kpi.pk}/").status_code == 204
    assert not KPI.objects.filter(pk=kpi.pk).exists()
    assert api.delete(f"/api/v1/kpis/{kpi.pk}/").status_code == 404

    decide(pm_kpi_other.initiative, "go", pm)
    response = api.delete(f"/api/v1/kpis/{pm_kpi_other.pk}/")
    assert response.status_code == 409
    assert "removed only in Biz" in response.json()["error"]["message"]


@pytest.fixture
def pm_kpi_other(ready_initiative: Initiative, pm: Any) -> KPI:
    return services.kpi_define(initiative=ready_initiative, user=pm, name="Second", target=1)


def test_api_patch_uses_the_same_service(pm: Any, kpi: KPI) -> None:
    api = authenticate(APIClient(), pm)
    response = api.patch(f"/api/v1/kpis/{kpi.pk}/", {"target": 99}, format="json")
    assert response.status_code == 200
    assert response.json()["target"] == 99


def test_the_schema_documents_delete() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "delete" in schema["paths"]["/api/v1/kpis/{id}/"]
