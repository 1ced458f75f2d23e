"""The guided Dev → Ops gate (#13): the jobs criterion links to where each KPI's job is
registered, names the engineers who can do it, and the accountable PM asks one of them
(a request in their alerts, an e-mail, an entry in the history), at most once an hour per
engineer and KPI. Kill and retire ask for a confirmation."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from bizdevops import outbox
from initiatives import services as initiative_services
from initiatives.models import Initiative, Phase, Status, TeamRole
from jobs.checks import JOB_REQUEST
from kpis import services as kpi_services
from notifications import services as notification_services
from notifications.models import Alert
from phases.models import GateDecision
from tests.factories import pass_dev_gate
from tests.helpers import HTMX, html, is_oob, page_of, queries

CODE = "kpi_jobs_trial_passed"


def _criterion(content: str, code: str = CODE) -> str:
    """The gate panel's row of a criterion: up to the next row, or the decision form."""
    start = content.index(f'data-code="{code}"')
    ends = [
        i
        for i in (
            content.find('<li class="criterion', start),
            content.find('id="decision-form"', start),
            content.find("</section>", start),
        )
        if i != -1
    ]
    return content[start : min(ends)]


def _ask(client: Any, initiative: Initiative, engineer: Any, kpi: Any, **extra: Any) -> Any:
    return client.post(
        page_of(initiative, f"criteria/{CODE}/ask/"),
        {"engineer": engineer.pk, "about": kpi.pk},
        **extra,
    )


@pytest.fixture
def kpi(dev_initiative: Initiative) -> Any:
    return dev_initiative.kpis.get(name="Fraud caught")


def test_the_jobs_criterion_links_to_the_job_create_page_and_names_the_engineer(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    type(engineer).objects.filter(pk=engineer.pk).update(first_name="Grace", last_name="Hopper")
    client.force_login(pm)
    row = _criterion(html(client.get(page_of(dev_initiative))))
    assert f'href="/ops/kpis/{kpi.pk}/job/"' in row
    assert "Register the job of “Fraud caught”" in row
    assert (
        "Who can do it: <strong>Grace Hopper</strong> (a data or devops engineer on the team)"
        in (row)
    )
    assert f'action="{page_of(dev_initiative, f"criteria/{CODE}/ask/")}"' in row
    assert "Ask Grace Hopper" in row


def test_a_job_that_has_not_passed_its_trial_links_to_the_job_page(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    from jobs import services as job_services

    job = job_services.job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=300,
        source_kind="python",
        calculation="portfolio.initiatives_in_ops",
    )
    client.force_login(pm)
    row = _criterion(html(client.get(page_of(dev_initiative))))
    assert f'href="/ops/jobs/{job.pk}/"' in row
    assert "Start a trial run of the job of “Fraud caught”" in row
    assert "/job/" not in row.replace(f"/ops/jobs/{job.pk}/", "")


@pytest.mark.parametrize("who", ["engineer", "stakeholder", "other_pm"])
def test_only_the_accountable_pm_is_offered_the_ask(
    client: Any, request: Any, who: str, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(request.getfixturevalue(who))
    row = _criterion(html(client.get(page_of(dev_initiative))))
    assert f'href="/ops/kpis/{kpi.pk}/job/"' in row  # everyone sees where it is done
    assert "Who can do it:" in row
    assert "/ask/" not in row


def test_no_engineer_on_the_team_says_so_and_links_the_team_form(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    membership = dev_initiative.memberships.get(role=TeamRole.DATA_ENGINEER)
    initiative_services.member_remove(membership=membership, user=pm)
    client.force_login(pm)
    content = html(client.get(page_of(dev_initiative)))
    row = _criterion(content)
    assert "No engineer on the team yet" in row
    assert '<a href="#team-person">add one</a>' in row
    assert 'id="team-person"' in content  # the team form's person picker
    assert "/ask/" not in row


def test_the_pm_asks_the_engineer_a_request_an_email_and_a_history_entry(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "http://127.0.0.1:8123"
    mail.outbox = []
    client.force_login(pm)
    response = _ask(client, dev_initiative, engineer, kpi)
    assert response.status_code == 302
    assert response["Location"] == f"{page_of(dev_initiative)}#gate-panel"

    alert = Alert.objects.get(kind=JOB_REQUEST)
    assert list(alert.recipients.all()) == [engineer]
    assert alert.sent_by == pm
    assert (alert.object_type, alert.object_id) == ("kpi", str(kpi.pk))
    assert alert.url == f"/ops/kpis/{kpi.pk}/job/"
    assert alert.subject == dev_initiative.key
    assert alert.message.startswith(
        "pm asks you to register the recalculation job of the KPI “Fraud caught”"
    )
    # The e-mail goes through the alerts' outbox task, linking to the job-create page.
    assert alert.pk in outbox.pending_args(notification_services.SEND_ALERT_EMAIL)
    assert notification_services.alert_email(alert) == 1
    (message,) = mail.outbox
    assert message.to == ["engineer@example.com"]
    assert f"http://127.0.0.1:8123/ops/kpis/{kpi.pk}/job/" in message.body

    page = html(client.get(page_of(dev_initiative)))
    assert "Asked engineer: they see it in their alerts" in page
    assert "Asked engineer</strong>" in page  # the history
    client.force_login(engineer)
    alerts = html(client.get("/alerts/"))
    assert "pm asks you to register the recalculation job" in alerts
    assert f'href="/ops/kpis/{kpi.pk}/job/"' in alerts


def test_with_htmx_the_gate_panel_and_the_history_come_back(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(pm)
    content = html(_ask(client, dev_initiative, engineer, kpi, **HTMX))
    assert '<section class="card gate-panel" id="gate-panel"' in content
    assert is_oob(content, "history")


def test_asking_again_within_the_hour_is_refused_with_when(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(pm)
    assert _ask(client, dev_initiative, engineer, kpi).status_code == 302
    content = html(_ask(client, dev_initiative, engineer, kpi), 409)
    assert "engineer was asked to register the recalculation job" in content
    assert "ago already; you can ask again from" in content
    assert Alert.objects.filter(kind=JOB_REQUEST).count() == 1

    later = timezone.now() + dt.timedelta(minutes=61)
    with mock.patch.object(notification_services.timezone, "now", return_value=later):
        assert _ask(client, dev_initiative, engineer, kpi).status_code == 302
    assert Alert.objects.filter(kind=JOB_REQUEST).count() == 2


def test_the_limit_is_per_engineer(
    client: Any, pm: Any, engineer: Any, devops: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    initiative_services.member_add(
        initiative=dev_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm
    )
    client.force_login(pm)
    row = _criterion(html(client.get(page_of(dev_initiative))))
    assert '<select name="engineer"' in row  # two engineers: a choice
    assert _ask(client, dev_initiative, engineer, kpi).status_code == 302
    assert _ask(client, dev_initiative, devops, kpi).status_code == 302
    assert Alert.objects.filter(kind=JOB_REQUEST).count() == 2


@pytest.mark.parametrize("who", ["engineer", "stakeholder", "other_pm", "scientist"])
def test_only_the_accountable_pm_or_an_admin_asks(
    client: Any, request: Any, who: str, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert _ask(client, dev_initiative, engineer, kpi).status_code == 403
    assert not Alert.objects.exists()


def test_an_admin_asks(
    client: Any, admin_user: Any, engineer: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(admin_user)
    assert _ask(client, dev_initiative, engineer, kpi).status_code == 302
    assert Alert.objects.get().sent_by == admin_user


def test_someone_off_the_team_cannot_be_asked(
    client: Any, pm: Any, engineer2: Any, dev_initiative: Initiative, kpi: Any
) -> None:
    client.force_login(pm)
    content = html(_ask(client, dev_initiative, engineer2, kpi), 400)
    assert "engineer2 cannot do this: ask a data or devops engineer on the team." in content
    assert not Alert.objects.exists()


def test_nothing_to_ask_about_a_kpi_that_is_done_or_foreign(
    client: Any, pm: Any, engineer: Any, dev_initiative: Initiative, kpi: Any, unit: Any
) -> None:
    from tests.factories import make_initiative

    other = make_initiative(pm, unit, title="Other")
    foreign = kpi_services.kpi_define(initiative=other, user=pm, name="Elsewhere", target=1)
    client.force_login(pm)
    content = html(_ask(client, dev_initiative, engineer, foreign), 409)
    assert "That is done already, or not part of" in content
    content = html(
        client.post(page_of(dev_initiative, f"criteria/{CODE}/ask/"), {"engineer": "x"}), 400
    )
    assert not Alert.objects.exists()


def test_a_criterion_of_another_gate_cannot_be_asked_about(
    client: Any, pm: Any, engineer: Any, biz_initiative: Initiative
) -> None:
    kpi = kpi_services.kpi_define(initiative=biz_initiative, user=pm, name="Recall", target=1)
    client.force_login(pm)
    content = html(_ask(client, biz_initiative, engineer, kpi), 409)
    assert "is not a criterion of" in content


def test_the_gate_panel_queries_do_not_grow_with_the_kpis(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    queries(client, page_of(dev_initiative))  # warm up
    one = queries(client, page_of(dev_initiative))
    for n in range(5):
        kpi_services.kpi_define(initiative=dev_initiative, user=pm, name=f"KPI {n}", target=1)
    assert queries(client, page_of(dev_initiative)) == one


# Kill and retire: final, so confirmed.


def test_kill_without_the_confirmation_is_refused_on_the_field(
    client: Any, pm: Any, dev_initiative: Initiative
) -> None:
    client.force_login(pm)
    page = html(client.get(page_of(dev_initiative)))
    assert 'name="confirm_final"' in page
    assert "I understand that kill and retire are final" in page
    assert "js/confirm-final.js" in page
    data = {"decision": "kill", "rationale": "No budget", "from_phase": "dev"}
    content = html(client.post(page_of(dev_initiative, "decisions/"), data), 400)
    assert "Kill is final: tick “I understand that kill and retire are final”" in content
    assert "No budget" in content  # the form keeps what was typed
    dev_initiative.refresh_from_db()
    assert dev_initiative.status == Status.ACTIVE
    assert not GateDecision.objects.filter(decision="kill").exists()

    response = client.post(page_of(dev_initiative, "decisions/"), {**data, "confirm_final": "on"})
    assert response.status_code == 302
    dev_initiative.refresh_from_db()
    assert dev_initiative.status == Status.CANCELLED


def test_retire_needs_the_confirmation_too(
    client: Any, pm: Any, ops_initiative: Initiative
) -> None:
    client.force_login(pm)
    data = {"decision": "retire", "rationale": "Done", "from_phase": "ops"}
    html(client.post(page_of(ops_initiative, "decisions/"), data, **HTMX), 400)
    ops_initiative.refresh_from_db()
    assert ops_initiative.status == Status.ACTIVE
    data["confirm_final"] = "on"
    assert client.post(page_of(ops_initiative, "decisions/"), data, **HTMX).status_code == 200
    ops_initiative.refresh_from_db()
    assert ops_initiative.status == Status.RETIRED


def test_other_decisions_need_no_confirmation(
    client: Any, pm: Any, stakeholder: Any, dev_initiative: Initiative
) -> None:
    pass_dev_gate(dev_initiative, pm=pm, stakeholder=stakeholder)
    client.force_login(pm)
    data = {"decision": "go", "rationale": "Ready", "from_phase": "dev"}
    assert client.post(page_of(dev_initiative, "decisions/"), data).status_code == 302
    dev_initiative.refresh_from_db()
    assert dev_initiative.phase == Phase.OPS


def test_the_api_kills_without_the_page_confirmation(pm: Any, dev_initiative: Initiative) -> None:
    # An API client that sends a kill means it (the rationale is required): no such field.
    from rest_framework.test import APIClient

    from tests.api.helpers import authenticate

    api = authenticate(APIClient(), pm)
    response = api.post(
        f"/api/v1/initiatives/{dev_initiative.key}/decisions/",
        {"decision": "kill", "rationale": "No budget"},
        format="json",
    )
    assert response.status_code == 201, response.content
    dev_initiative.refresh_from_db()
    assert dev_initiative.status == Status.CANCELLED
