"""List endpoints run a constant number of queries whatever the page size."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import TeamRole
from initiatives.services import business_unit_save, member_add
from jobs import services as job_services
from jobs.models import Job, Run
from kpis import services as kpi_services
from tests.api.helpers import API
from tests.factories import make_initiative
from tests.helpers import counted_get

pytestmark = pytest.mark.django_db

ROWS = 24  # more than the larger page

PYTHON_JOB = {
    "schedule_kind": "interval",
    "interval_seconds": 600,
    "source_kind": "python",
    "calculation": "portfolio.initiatives_in_ops",
}


@pytest.fixture
def many(admin_user, pm, other_pm, engineer, make_user, unit, stakeholder):
    """ROWS business units (each with stakeholders, among them the `stakeholder`, who sees
    only their own units), initiatives with teams and KPIs (half of them with a job), and
    ROWS runs of one job."""
    for n in range(ROWS):
        people = [make_user(Role.BUSINESS_STAKEHOLDER, username=f"stake{n}-{i}") for i in range(2)]
        people.append(stakeholder)
        business_unit_save(user=admin_user, name=f"Unit {n:02d}", stakeholders=people)
    jobs = []
    for n in range(ROWS):
        owner = pm if n % 2 else other_pm
        initiative = make_initiative(owner, unit, title=f"Initiative {n:02d}")
        member_add(initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=owner)
        kpi = kpi_services.kpi_define(initiative=initiative, user=owner, name="Share", target=n)
        if n % 2:
            jobs.append(job_services.job_register(kpi=kpi, user=engineer, **PYTHON_JOB))
    # Jobs need one KPI each: fill up to ROWS jobs with extra KPIs.
    initiative = make_initiative(pm, unit, title="Job farm")
    while len(jobs) < ROWS:
        kpi = kpi_services.kpi_define(initiative=initiative, user=pm, name=f"K{len(jobs)}")
        jobs.append(job_services.job_register(kpi=kpi, user=admin_user, **PYTHON_JOB))
    base = timezone.now() - dt.timedelta(days=2)
    Run.objects.bulk_create(
        Run(job=jobs[0], scheduled_for=base + dt.timedelta(minutes=5 * n), requested_by=pm)
        for n in range(ROWS)
    )
    return jobs


def _queries(client, url: str, page_size: int) -> int:
    count, response = counted_get(client, url, {"page_size": page_size})
    assert len(response.json()["results"]) == page_size
    return count


@pytest.mark.parametrize(
    "path",
    ["initiatives/", "kpis/", "jobs/", "jobs/{job}/runs/", "business-units/"],
)
@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
def test_list_queries_do_not_grow_with_the_page(request, api_as, many, path, who):
    client = api_as(request.getfixturevalue(who))
    url = f"{API}/" + path.format(job=many[0].pk)
    _queries(client, url, 2)  # warm up anything cached per process

    small = _queries(client, url, 2)
    large = _queries(client, url, 20)

    assert small == large, f"{path}: {small} queries for 2 rows, {large} for 20"


@pytest.mark.parametrize("path", ["initiatives/", "jobs/{job}/runs/"])
@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
def test_cursor_page_queries_do_not_grow_with_the_page(request, api_as, many, path, who):
    client = api_as(request.getfixturevalue(who))
    url = f"{API}/" + path.format(job=many[0].pk)
    counts = []
    for size in (2, 20):
        count, response = counted_get(client, url, {"pagination": "cursor", "page_size": size})
        assert len(response.json()["results"]) == size
        counts.append(count)

    assert counts[0] == counts[1], f"{path}: {counts[0]} queries for 2 rows, {counts[1]} for 20"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("initiatives/", {"phase": "biz", "search": "Initiative", "ordering": "-title"}),
        ("kpis/", {"ordering": "name"}),
        ("jobs/", {"enabled": "true"}),
    ],
)
def test_filtered_list_queries_do_not_grow_with_the_page(api_as, admin_user, many, path, query):
    client = api_as(admin_user)
    counts = []
    for size in (2, 20):
        with CaptureQueriesContext(connection) as context:
            response = client.get(f"{API}/{path}", {**query, "page_size": size})
        assert len(response.json()["results"]) == size
        counts.append(len(context.captured_queries))

    assert counts[0] == counts[1]


def test_the_jobs_of_the_fixture_exist(many):
    assert Job.objects.count() >= ROWS
    assert many[0].runs.count() == ROWS
