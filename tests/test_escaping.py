"""Stored cross-site scripting: text that users type is shown to other users on every page,
and is always escaped (no template marks anything safe). Each page is read by a user who may
see it, with markup in every user-typed text that the page shows."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from initiatives.models import BusinessUnit, Initiative
from jobs.models import Job
from kpis.models import KPI
from notifications import services as notification_services
from notifications.models import Alert
from tests.helpers import html, page_of

pytestmark = pytest.mark.django_db

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'>'
UNIT = "<script>u</script>"  # a KPI unit holds at most 30 characters
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def marked_up(ops_initiative: Initiative, ops_kpi: KPI, ops_job: Job, pm: Any) -> Initiative:
    """The standard initiative in Ops with markup in its title, story, unit, KPI and alert
    (written straight to the database: this is about showing text, not about taking it)."""
    Initiative.objects.filter(pk=ops_initiative.pk).update(
        title=f"Title {PAYLOAD}", business_problem=f"Problem {PAYLOAD}"
    )
    BusinessUnit.objects.filter(pk=ops_initiative.business_unit_id).update(name=f"Unit {PAYLOAD}")
    KPI.objects.filter(pk=ops_kpi.pk).update(name=f"KPI {PAYLOAD}", unit=UNIT)
    notification_services.alert_record(
        kind="test",
        message=f"Alert {PAYLOAD}",
        recipients=[pm.pk],
        event="kpi.status_changed",
        payload={},
        subject=ops_initiative.key,
    )
    assert Alert.objects.filter(message__contains="<script>").exists()
    return ops_initiative


def _pages(initiative: Initiative, kpi: KPI, job: Job) -> list[str]:
    return [
        "/board/",
        page_of(initiative),
        page_of(initiative, "dashboard/"),
        "/dashboards/",
        f"/dashboards/units/{initiative.business_unit_id}/",
        f"/kpis/{kpi.pk}/chart/",
        "/ops/",
        f"/ops/jobs/{job.pk}/",
        "/alerts/",
    ]


def test_user_text_is_escaped_on_every_page(
    client: Client, marked_up: Initiative, ops_kpi: KPI, ops_job: Job, pm: Any
) -> None:
    client.force_login(pm)
    shown = 0
    for url in _pages(marked_up, ops_kpi, ops_job):
        content = html(client.get(url, follow=True))
        assert "<script>alert" not in content, url
        assert UNIT not in content, url
        assert "onerror=alert(1)>" not in content.replace("&lt;img src=x onerror=alert(1)&gt;", "")
        shown += ESCAPED in content
    # The payload is really on the pages (escaped), so the check above is not vacuous.
    assert shown == len(_pages(marked_up, ops_kpi, ops_job))


def test_user_text_is_escaped_for_a_stakeholder(
    client: Client, marked_up: Initiative, stakeholder: Any
) -> None:
    client.force_login(stakeholder)
    for url in ("/dashboards/", page_of(marked_up)):
        content = html(client.get(url, follow=True))
        assert "<script>alert" not in content, url
        assert ESCAPED in content, url
