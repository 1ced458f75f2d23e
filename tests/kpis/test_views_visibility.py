"""A business stakeholder of another unit sees none of this unit's jobs or KPI pages."""

from __future__ import annotations

from typing import Any

from bizdevops.roles import Role
from tests.factories import BusinessUnitFactory


def test_other_units_jobs_and_kpi_pages_are_404(client: Any, make_user: Any, ops_job: Any):
    outsider = make_user(Role.BUSINESS_STAKEHOLDER, username="marketing-lead")
    BusinessUnitFactory(name="Marketing").stakeholders.add(outsider)
    client.force_login(outsider)
    key = ops_job.kpi.initiative.key
    for url in (
        f"/ops/jobs/{ops_job.pk}/",
        f"/initiatives/{key}/dashboard/",
        f"/kpis/{ops_job.kpi.pk}/chart/",
        f"/kpis/{ops_job.kpi.pk}/export.csv",
    ):
        assert client.get(url).status_code == 404, url
    assert key not in client.get("/ops/").content.decode()


def test_the_units_own_stakeholder_sees_them(client: Any, stakeholder: Any, ops_job: Any):
    client.force_login(stakeholder)
    assert client.get(f"/ops/jobs/{ops_job.pk}/").status_code == 200
    assert ops_job.kpi.initiative.key in client.get("/ops/").content.decode()
