"""The lists that build their rows without a serializer answer the same bytes as the
serializer did, and count without joins."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from initiatives import selectors
from initiatives.models import Initiative
from initiatives.serializers import InitiativeSerializer
from jobs import services as job_services
from jobs.models import Run
from jobs.selectors import jobs_visible_to, runs_of
from jobs.serializers import JobSerializer, RunSerializer
from kpis import services as kpi_services
from kpis.api import _kpis
from kpis.serializers import KPISerializer
from tests.api.helpers import API
from tests.factories import BusinessUnitFactory, make_initiative

pytestmark = pytest.mark.django_db

PYTHON = {"source_kind": "python", "calculation": "portfolio.initiatives_in_ops"}


@pytest.fixture
def varied(pm, other_pm, unit, ops_initiative):
    """Initiatives in every phase and status, in Dev with time left, overdue and without a
    start, with 0, 1 and 2 KPIs, in two units, with text that JSON must escape."""
    other_unit = BusinessUnitFactory(name="Ünits & «quotes»")
    plain = make_initiative(other_pm, other_unit, title='A "quoted" title with <b>markup</b> ✓')
    kpi_services.kpi_define(initiative=plain, user=other_pm, name="One")
    kpi_services.kpi_define(initiative=plain, user=other_pm, name="Two")
    now = timezone.now()
    shapes = [
        {"phase": "dev", "dev_started_at": now - dt.timedelta(days=3, hours=5)},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=9)},
        {"phase": "dev", "dev_started_at": None},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=9), "status": "on_hold"},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=9), "status": "cancelled"},
        {"phase": "ops", "status": "retired", "dev_started_at": now - dt.timedelta(weeks=30)},
        {
            "phase": "biz",
            "status": "cancelled",
            "use_case": "",
            "business_problem": "Two\nlines\t\\ \u2028" * 50,
        },
    ]
    for n, shape in enumerate(shapes):
        made = make_initiative(pm, unit, title=f"Shape {n}", dev_timebox_weeks=3 + n % 4)
        # Straight to the state to show: a representation test, not a flow.
        Initiative.objects.filter(pk=made.pk).update(**shape)
    return [ops_initiative, plain]


def _serialized(user, page_size: int, **filters: str) -> bytes:
    """The list page as the serializer wrote it before the rows were built by hand."""
    listed = selectors.initiatives_visible_to(user).filter(**filters).order_by("id")
    body = {
        "count": listed.count(),
        "next": None,
        "previous": None,
        "results": InitiativeSerializer(listed[:page_size], many=True).data,
    }
    return JSONRenderer().render(body)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize("who", ["admin_user", "stakeholder", "pm"])
def test_the_initiative_list_answers_the_serializers_bytes(request, api_as, varied, who, zone):
    user = request.getfixturevalue(who)
    with override_settings(TIME_ZONE=zone):
        response = api_as(user).get(f"{API}/initiatives/", {"page_size": 100})
        expected = _serialized(user, 100)

    assert response.status_code == 200
    assert response.json()["count"] > 0
    assert response.content == expected


def test_a_filtered_initiative_list_answers_the_serializers_bytes(api_as, admin_user, varied):
    response = api_as(admin_user).get(f"{API}/initiatives/", {"phase": "dev", "page_size": 100})

    assert response.json()["count"] == 5
    assert response.content == _serialized(admin_user, 100, phase="dev")


# The count of all rows, a subquery of the page's own statement (bizdevops.api._Rows).
COUNT_SUBQUERY = re.compile(r"\(SELECT COUNT\(\*\) .*?\) AS \"rows_in_all_pages\"", re.S)


def _count_query(client, url: str, query: dict[str, str]) -> str:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, query)
    assert response.status_code == 200
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(*)" in q["sql"]]
    assert len(counts) == 1, counts
    (count,) = COUNT_SUBQUERY.findall(counts[0])
    return count


@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
@pytest.mark.parametrize(
    "query", [{}, {"phase": "ops"}, {"search": "Shape", "status": "active", "ordering": "-title"}]
)
def test_the_initiative_count_runs_on_the_initiative_table_alone(
    request, api_as, varied, who, query
):
    sql = _count_query(api_as(request.getfixturevalue(who)), f"{API}/initiatives/", query)

    assert "JOIN" not in sql.upper()
    assert "GROUP BY" not in sql.upper()


@pytest.fixture
def varied_kpis_jobs_runs(admin_user, pm, engineer, ops_job, varied):
    """KPIs with and without thresholds and a job, jobs of each kind, and runs in each
    state, with and without a start, an end, a value and an error."""
    plain = varied[1]
    with_all = kpi_services.kpi_define(
        initiative=plain,
        user=admin_user,
        name="Thresholds «all»",
        unit="%",
        description="Line one\nline two",
        direction="lower",
        target=1e-7,
        warning_threshold=4.5,
        critical_threshold=7,
    )
    job_services.job_register(
        kpi=with_all, user=admin_user, schedule_kind="cron", cron="*/5 * * * *", **PYTHON
    )
    now = timezone.now()
    Run.objects.bulk_create(
        [
            Run(job=ops_job, scheduled_for=now - dt.timedelta(hours=3), requested_by=pm),
            Run(
                job=ops_job,
                scheduled_for=now - dt.timedelta(hours=2),
                state="succeeded",
                attempt=1,
                started_at=now - dt.timedelta(hours=2),
                finished_at=now - dt.timedelta(hours=2) + dt.timedelta(seconds=1.25),
                value=42,
                worker="celery@host",
            ),
            Run(
                job=ops_job,
                scheduled_for=now - dt.timedelta(hours=1),
                trigger="manual",
                state="failed",
                attempt=3,
                started_at=now - dt.timedelta(minutes=50),
                finished_at=now - dt.timedelta(minutes=49, microseconds=1),
                error='Boom: "quoted" ✗\nTraceback',
            ),
            Run(
                job=ops_job,
                scheduled_for=now,
                state="running",
                attempt=1,
                started_at=now,
                value=-0.5,
            ),
        ]
    )
    return ops_job


def _page(data) -> bytes:
    return JSONRenderer().render(
        {"count": len(data), "next": None, "previous": None, "results": data}
    )


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_the_kpi_job_and_run_lists_answer_the_serializers_bytes(
    api_as, admin_user, varied_kpis_jobs_runs, zone
):
    job = varied_kpis_jobs_runs
    client = api_as(admin_user)
    with override_settings(TIME_ZONE=zone):
        kpis = client.get(f"{API}/kpis/", {"page_size": 100})
        jobs = client.get(f"{API}/jobs/", {"page_size": 100})
        runs = client.get(f"{API}/jobs/{job.pk}/runs/", {"page_size": 100})
        expected_kpis = _page(KPISerializer(_kpis(admin_user), many=True).data)
        expected_jobs = _page(
            JobSerializer(jobs_visible_to(admin_user).order_by("id"), many=True).data
        )
        expected_runs = _page(RunSerializer(runs_of(job), many=True).data)

    assert kpis.json()["count"] >= 3
    assert kpis.content == expected_kpis
    assert jobs.json()["count"] == 2
    assert jobs.content == expected_jobs
    assert runs.json()["count"] >= 4
    assert runs.content == expected_runs
