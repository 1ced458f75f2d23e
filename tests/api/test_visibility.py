"""A user whose only role is business stakeholder sees their own units' initiatives, KPIs
and jobs through the API, as in the pages; everything else answers 404 or is left out."""

from __future__ import annotations

from typing import Any

from bizdevops.roles import Role
from tests.api.helpers import API
from tests.factories import BusinessUnitFactory


def _outsider(make_user: Any) -> Any:
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="marketing-lead")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)
    return outsider


def test_lists_leave_out_other_units(api_as: Any, make_user: Any, stakeholder: Any, ops_job: Any):
    key = ops_job.kpi.initiative.key
    mine = api_as(stakeholder)
    assert [i["key"] for i in mine.get(f"{API}/initiatives/").json()["results"]] == [key]
    assert len(mine.get(f"{API}/kpis/").json()["results"]) == 1
    assert len(mine.get(f"{API}/jobs/").json()["results"]) == 1

    other = api_as(_outsider(make_user))
    assert other.get(f"{API}/initiatives/").json()["count"] == 0
    assert other.get(f"{API}/kpis/").json()["count"] == 0
    assert other.get(f"{API}/jobs/").json()["count"] == 0


def test_details_of_other_units_are_404(api_as: Any, make_user: Any, ops_job: Any):
    other = api_as(_outsider(make_user))
    key, kpi = ops_job.kpi.initiative.key, ops_job.kpi.pk
    for path in (
        f"initiatives/{key}/",
        f"initiatives/{key}/gate/",
        f"initiatives/{key}/history/",
        f"kpis/{kpi}/",
        f"kpis/{kpi}/measurements/",
        f"jobs/{ops_job.pk}/",
        f"jobs/{ops_job.pk}/runs/",
    ):
        assert other.get(f"{API}/{path}").status_code == 404, path


def test_other_roles_see_everything(api_as: Any, engineer2: Any, ops_job: Any):
    # An engineer on no team still sees the portfolio (only stakeholders are limited).
    client = api_as(engineer2)
    assert client.get(f"{API}/initiatives/").json()["count"] == 1
    assert client.get(f"{API}/jobs/{ops_job.pk}/").status_code == 200
