"""The Ops page at portfolio scale: a page of initiatives at a time, in a number of queries
that does not grow with the initiatives."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from initiatives.models import BusinessUnit, Initiative, Phase, Status
from jobs.views import OPS_PAGE
from kpis.models import KPI, Measurement, Origin
from tests.helpers import html, queries

pytestmark = pytest.mark.django_db

SECTION_KEY = re.compile(r'<section class="card ops-initiative" data-key="(BDO-\d+)">')


def _add(count: int, *, phase: Phase, unit: BusinessUnit, owner: Any) -> list[Initiative]:
    rows = Initiative.objects.bulk_create(
        Initiative(
            title=f"Running {n}",
            business_unit=unit,
            accountable=owner,
            created_by=owner,
            phase=phase,
            status=Status.ACTIVE,
        )
        for n in range(count)
    )
    kpis = KPI.objects.bulk_create(KPI(initiative=i, name="Uptime", created_by=owner) for i in rows)
    Measurement.objects.bulk_create(
        Measurement(kpi=k, as_of=timezone.now(), value=1.0, origin=Origin.API) for k in kpis
    )
    return rows


def test_the_ops_page_shows_a_page_of_initiatives_at_a_time(
    client: Any, engineer: Any, pm: Any, unit: BusinessUnit
) -> None:
    ops = _add(OPS_PAGE - 5, phase=Phase.OPS, unit=unit, owner=pm)
    dev = _add(10, phase=Phase.DEV, unit=unit, owner=pm)
    _add(3, phase=Phase.BIZ, unit=unit, owner=pm)  # not on the Ops page
    client.force_login(engineer)

    content = html(client.get("/ops/"))
    # Ops first, then Dev, as before.
    assert SECTION_KEY.findall(content) == [i.key for i in ops + dev[:5]]
    assert f"1–{OPS_PAGE} of {OPS_PAGE + 5} initiatives" in content
    assert 'href="?page=2" rel="next">Next page</a>' in content
    assert 'rel="prev"' not in content

    content = html(client.get("/ops/?page=2"))
    assert SECTION_KEY.findall(content) == [i.key for i in dev[5:]]
    assert f"{OPS_PAGE + 1}–{OPS_PAGE + 5} of {OPS_PAGE + 5} initiatives" in content
    assert 'href="?page=1" rel="prev">Previous page</a>' in content
    assert 'rel="next"' not in content

    # Odd page numbers: the first page, or the last past the end.
    assert SECTION_KEY.findall(html(client.get("/ops/?page=abc")))[0] == ops[0].key
    assert SECTION_KEY.findall(html(client.get("/ops/?page=99"))) == [i.key for i in dev[5:]]


def test_one_page_needs_no_page_links(
    client: Any, engineer: Any, pm: Any, unit: BusinessUnit
) -> None:
    _add(2, phase=Phase.OPS, unit=unit, owner=pm)
    client.force_login(engineer)
    content = html(client.get("/ops/"))
    assert len(SECTION_KEY.findall(content)) == 2
    assert 'class="pagination"' not in content


def test_the_ops_page_runs_the_same_queries_with_10_and_120_initiatives(
    client: Any, engineer: Any, pm: Any, unit: BusinessUnit
) -> None:
    _add(5, phase=Phase.OPS, unit=unit, owner=pm)
    _add(5, phase=Phase.DEV, unit=unit, owner=pm)
    client.force_login(engineer)
    queries(client, "/ops/")  # warm up
    few = queries(client, "/ops/")

    _add(55, phase=Phase.OPS, unit=unit, owner=pm)
    _add(55, phase=Phase.DEV, unit=unit, owner=pm)
    content = html(client.get("/ops/"))
    assert len(SECTION_KEY.findall(content)) == OPS_PAGE
    assert queries(client, "/ops/") == few
    assert queries(client, "/ops/?page=3") == few
    # Session, user, the user's team roles and roles, the count, the page of initiatives and
    # their KPIs (with jobs, one more for their recent runs: tests/jobs/test_views_ops.py).
    assert few == 7
