"""KPI definitions: list with the initiative filter, define, read, change."""

from __future__ import annotations

import pytest

from kpis import services as kpi_services
from kpis.models import KPI
from phases.models import Decision
from tests.api.helpers import API, error_of
from tests.factories import decide, make_initiative

pytestmark = pytest.mark.django_db

KPI_FIELDS = {
    "id",
    "initiative",
    "name",
    "unit",
    "description",
    "direction",
    "target",
    "warning_threshold",
    "critical_threshold",
    "decimals",
    "job",
    "created_at",
}


@pytest.fixture
def two_initiatives(pm, unit, dev_initiative):
    other = make_initiative(pm, unit, title="Churn radar")
    kpi_services.kpi_define(initiative=other, user=pm, name="Churn", unit="%", target=5)
    return dev_initiative, other


def test_list_kpis(api_as, stakeholder, two_initiatives):
    dev, other = two_initiatives

    response = api_as(stakeholder).get(f"{API}/kpis/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert [(row["initiative"], row["name"]) for row in body["results"]] == [
        (dev.key, "Fraud caught"),
        (other.key, "Churn"),
    ]
    assert set(body["results"][0]) == KPI_FIELDS


def test_filter_kpis_by_initiative_key(api_as, pm, two_initiatives):
    dev, other = two_initiatives
    client = api_as(pm)

    def names(key):
        return [
            row["name"] for row in client.get(f"{API}/kpis/", {"initiative": key}).json()["results"]
        ]

    assert names(other.key) == ["Churn"]
    assert names(dev.key) == ["Fraud caught"]


@pytest.mark.parametrize("key", ["BDO-x", "BDO-0", "BDO-999999", "nonsense"])
def test_filter_by_an_unknown_key_is_empty(api_as, pm, two_initiatives, key):
    response = api_as(pm).get(f"{API}/kpis/", {"initiative": key})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_define_a_kpi(api_as, pm, initiative):
    response = api_as(pm).post(
        f"{API}/kpis/",
        {
            "initiative": initiative.key,
            "name": "False alarms",
            "unit": "%",
            "direction": "lower",
            "target": 2,
            "warning_threshold": 5,
            "critical_threshold": 10,
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    kpi = KPI.objects.get(initiative=initiative)
    body = response.json()
    assert body["id"] == kpi.pk
    assert body["initiative"] == initiative.key
    assert body["job"] is None
    assert (body["direction"], body["target"]) == ("lower", 2.0)
    assert (kpi.name, kpi.direction, kpi.target, kpi.critical_threshold) == (
        "False alarms",
        "lower",
        2.0,
        10.0,
    )
    assert kpi.created_by == pm


def test_a_kpi_counts_for_the_gate(api_as, pm, initiative):
    client = api_as(pm)
    client.post(
        f"{API}/kpis/",
        {"initiative": initiative.key, "name": "Recall", "target": 0.9},
        format="json",
    )

    gate = client.get(f"{API}/initiatives/{initiative.key}/gate/").json()

    row = {c["code"]: c for c in gate["criteria"]}["success_kpi_with_target"]
    assert row["satisfied"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Fraud caught"}, "name"),
        ({"name": "fraud CAUGHT"}, "name"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "x", "direction": "sideways"}, "direction"),
        ({"name": "x", "target": 90, "warning_threshold": 95}, "warning_threshold"),
        ({"name": "x", "target": "high"}, "target"),
    ],
)
def test_invalid_kpis_are_refused(api_as, pm, dev_initiative, body, field):
    response = api_as(pm).post(
        f"{API}/kpis/", {"initiative": dev_initiative.key, **body}, format="json"
    )

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert KPI.objects.filter(initiative=dev_initiative).count() == 1


@pytest.mark.parametrize(
    ("key", "status"), [("BDO-x", 404), ("BDO-0", 404), ("BDO-999999", 404), ("", 400)]
)
def test_a_kpi_of_an_unknown_initiative(api_as, pm, initiative, key, status):
    response = api_as(pm).post(f"{API}/kpis/", {"initiative": key, "name": "x"}, format="json")

    assert response.status_code == status
    error_of(response)
    assert not KPI.objects.exists()


def test_no_kpi_for_a_closed_initiative(api_as, pm, initiative):
    decide(initiative, Decision.KILL, pm)

    response = api_as(pm).post(
        f"{API}/kpis/", {"initiative": initiative.key, "name": "x"}, format="json"
    )

    assert response.status_code == 409
    assert not KPI.objects.exists()


def test_read_one_kpi(api_as, stakeholder, dev_kpi):
    response = api_as(stakeholder).get(f"{API}/kpis/{dev_kpi.pk}/")

    assert response.status_code == 200
    assert set(response.json()) == KPI_FIELDS
    assert response.json()["name"] == "Fraud caught"


def test_a_kpi_with_a_job_names_it(api_as, pm, ops_kpi, ops_job):
    assert api_as(pm).get(f"{API}/kpis/{ops_kpi.pk}/").json()["job"] == ops_job.pk


def test_change_a_kpi(api_as, engineer, dev_kpi):
    response = api_as(engineer).patch(
        f"{API}/kpis/{dev_kpi.pk}/",
        {"description": "Share of fraud flagged", "warning_threshold": 80},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["description"] == "Share of fraud flagged"
    assert response.json()["name"] == "Fraud caught"
    dev_kpi.refresh_from_db()
    assert (dev_kpi.description, dev_kpi.warning_threshold, dev_kpi.target) == (
        "Share of fraud flagged",
        80.0,
        90.0,
    )


def test_a_change_is_checked_against_the_stored_values(api_as, pm, dev_kpi):
    # target 90 is stored; a warning above it breaks "higher is better".
    response = api_as(pm).patch(
        f"{API}/kpis/{dev_kpi.pk}/", {"warning_threshold": 95}, format="json"
    )

    assert response.status_code == 400
    dev_kpi.refresh_from_db()
    assert dev_kpi.warning_threshold is None


def test_a_kpi_does_not_move_to_another_initiative(api_as, pm, unit, dev_kpi):
    other = make_initiative(pm, unit, title="Other")

    response = api_as(pm).patch(
        f"{API}/kpis/{dev_kpi.pk}/", {"initiative": other.key}, format="json"
    )

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"initiative": ["Unknown field."]}
    dev_kpi.refresh_from_db()
    assert dev_kpi.initiative_id != other.pk


def test_an_unknown_kpi_is_404(api_as, pm, db):
    client = api_as(pm)

    assert client.get(f"{API}/kpis/999999/").status_code == 404
    assert client.patch(f"{API}/kpis/999999/", {"name": "x"}, format="json").status_code == 404
    error_of(client.get(f"{API}/kpis/999999/"))


def test_kpis_are_not_deleted_through_the_api_outside_biz(api_as, admin_user, dev_kpi):
    # DELETE removes a KPI only in Biz (#13, tests/kpis/test_kpi_edit_remove.py); in Dev: 409.
    response = api_as(admin_user).delete(f"{API}/kpis/{dev_kpi.pk}/")
    assert response.status_code == 409
    assert "removed only in Biz" in response.json()["error"]["message"]
    assert KPI.objects.filter(pk=dev_kpi.pk).exists()
