"""Alerts: a KPI whose latest value changes status, and a job run that fails for good, are
recorded once, mailed once to the right people and published as webhook events.

Celery never runs here: the on-commit callbacks (the mail task, webhook deliveries) are
captured and counted, never executed; the mail is sent by calling the service directly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, TeamRole
from jobs import services as job_services
from jobs import sources
from jobs.models import DataSource, Job, Run, RunState, Trigger
from jobs.services import ALERT_KIND as RUN_FAILED
from kpis import services as kpi_services
from kpis.models import KPI, Measurement
from kpis.services import ALERT_KIND as KPI_STATUS
from notifications import services
from notifications.models import Alert, AlertMailing, Event, WebhookDelivery, WebhookSubscription
from notifications.tasks import send_alert_email
from tests.factories import BusinessUnitFactory
from tests.jobs.conftest import unreachable_source  # noqa: F401 (a fixture)
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def kpi(ops_kpi: KPI, pm: Any) -> KPI:  # noqa: F811
    """'Fraud caught' (higher is better, target 90): warning at 80, critical at 50."""
    return kpi_services.kpi_update(
        kpi=ops_kpi, user=pm, warning_threshold=80, critical_threshold=50
    )


@pytest.fixture
def hook(admin_user: Any) -> WebhookSubscription:
    """A subscription to every event, so that published events leave a delivery row."""
    subscription, _ = services.webhook_subscribe(
        user=admin_user,
        url="http://127.0.0.1:9/hook",
        events=list(Event.values),
        allow_private_addresses=True,
    )
    return subscription


@pytest.fixture
def second_stakeholder(make_user: Any, unit: BusinessUnit) -> Any:
    user = make_user(Role.BUSINESS_STAKEHOLDER, username="stakeholder-b")
    unit.stakeholders.add(user)
    return user


@pytest.fixture
def outsider(make_user: Any) -> Any:
    """A stakeholder of another unit: never a recipient of this unit's alerts."""
    user = make_user(Role.BUSINESS_STAKEHOLDER, username="outsider")
    BusinessUnitFactory(name="Payments").stakeholders.add(user)
    return user


T = timezone.now().replace(microsecond=0) - dt.timedelta(days=1)


def push(kpi: KPI, user: Any, *items: tuple[int, float]) -> None:
    """Push values at T + minutes through the API's service."""
    kpi_services.measurements_push(
        kpi=kpi, user=user, items=[(T + dt.timedelta(minutes=m), v) for m, v in items]
    )


def kpi_alerts(kpi: KPI) -> list[Alert]:
    return list(
        Alert.objects.filter(object_type="kpi", object_id=str(kpi.pk), kind=KPI_STATUS).order_by(
            "id"
        )
    )


def transitions(kpi: KPI) -> list[tuple[str, str]]:
    return [(a.from_status, a.to_status) for a in kpi_alerts(kpi)]


def events(event: Event) -> list[dict[str, Any]]:
    return [d.payload for d in WebhookDelivery.objects.filter(event=event).order_by("id")]


# KPI status changes


def test_a_first_healthy_value_records_no_alert(
    kpi: KPI, engineer: Any, hook: WebhookSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        push(kpi, engineer, (0, 95.0))

    assert Alert.objects.count() == 0
    assert not WebhookDelivery.objects.exists()
    assert callbacks == []
    kpi.refresh_from_db()
    assert kpi.last_health == "healthy"


def test_a_status_change_records_one_alert_for_the_pm_and_the_units_stakeholders(
    kpi: KPI,
    engineer: Any,
    pm: Any,
    stakeholder: Any,
    second_stakeholder: Any,
    outsider: Any,
    scientist: Any,
    hook: WebhookSubscription,
    django_capture_on_commit_callbacks: Any,
) -> None:
    push(kpi, engineer, (0, 95.0))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        push(kpi, engineer, (5, 70.0))

    (alert,) = Alert.objects.all()
    assert alert.kind == KPI_STATUS
    assert (alert.subject, alert.object_type, alert.object_id) == (
        kpi.initiative.key,
        "kpi",
        str(kpi.pk),
    )
    assert alert.url == f"/initiatives/{kpi.initiative.key}/dashboard/"
    assert (alert.from_status, alert.to_status, alert.value) == ("healthy", "warning", 70.0)
    assert alert.message == f"{kpi.initiative.key} Fraud caught: healthy → warning (value 70 %)."
    assert set(alert.recipients.all()) == {pm, stakeholder, second_stakeholder}
    assert outsider not in alert.recipients.all() and scientist not in alert.recipients.all()
    # Published as kpi.status_changed, and the mail and the delivery go out after the commit.
    (payload,) = events(Event.KPI_STATUS_CHANGED)
    assert payload["event"] == "kpi.status_changed"
    assert payload["data"] == {
        "initiative": kpi.initiative.key,
        "kpi": {"id": kpi.pk, "name": "Fraud caught", "unit": "%"},
        "from": "healthy",
        "to": "warning",
        "value": 70.0,
    }
    assert len(callbacks) == 2
    kpi.refresh_from_db()
    assert kpi.last_health == "warning"


def test_more_values_with_the_same_status_record_no_new_alert(
    kpi: KPI, engineer: Any, hook: WebhookSubscription
) -> None:
    push(kpi, engineer, (0, 95.0))
    push(kpi, engineer, (1, 70.0))
    push(kpi, engineer, (2, 75.0))
    push(kpi, engineer, (3, 80.0))  # exactly on the warning threshold: still warning
    push(kpi, engineer, (4, 60.0), (5, 51.0))
    assert transitions(kpi) == [("healthy", "warning")]

    push(kpi, engineer, (6, 50.0))  # exactly critical
    push(kpi, engineer, (7, 10.0))
    push(kpi, engineer, (8, 0.0))
    assert transitions(kpi) == [("healthy", "warning"), ("warning", "critical")]

    push(kpi, engineer, (9, 99.0))  # back to healthy: one alert
    push(kpi, engineer, (10, 98.0))
    assert transitions(kpi) == [
        ("healthy", "warning"),
        ("warning", "critical"),
        ("critical", "healthy"),
    ]
    assert [p["data"]["to"] for p in events(Event.KPI_STATUS_CHANGED)] == [
        "warning",
        "critical",
        "healthy",
    ]
    assert kpi_alerts(kpi)[-1].message.endswith("critical → healthy (value 99 %).")


def test_a_first_value_that_is_not_healthy_is_alerted_from_no_status(
    kpi: KPI, engineer: Any, pm: Any, stakeholder: Any, hook: WebhookSubscription
) -> None:
    push(kpi, engineer, (0, 42.5))

    (alert,) = kpi_alerts(kpi)
    assert (alert.from_status, alert.to_status, alert.value) == ("unknown", "critical", 42.5)
    assert "no status → critical (value 42.5 %)" in alert.message
    assert set(alert.recipients.all()) == {pm, stakeholder}
    assert events(Event.KPI_STATUS_CHANGED)[0]["data"]["from"] == "unknown"


def test_an_old_value_does_not_change_the_status(
    kpi: KPI, engineer: Any, hook: WebhookSubscription
) -> None:
    push(kpi, engineer, (60, 95.0))

    push(kpi, engineer, (0, 10.0))  # as of an hour before the latest: history only
    push(kpi, engineer, (30, 20.0), (59, 70.0))

    assert kpi_alerts(kpi) == []
    assert not WebhookDelivery.objects.exists()
    kpi.refresh_from_db()
    assert kpi.last_health == "healthy"
    assert Measurement.objects.filter(kpi=kpi).count() == 4


def test_one_push_of_several_values_alerts_on_the_latest_only(
    kpi: KPI, engineer: Any, hook: WebhookSubscription
) -> None:
    push(kpi, engineer, (0, 95.0))
    push(kpi, engineer, (3, 70.0), (1, 10.0), (2, 20.0))  # the latest (3) is a warning
    assert transitions(kpi) == [("healthy", "warning")]


def test_correcting_the_latest_value_changes_the_status(
    kpi: KPI, engineer: Any, hook: WebhookSubscription
) -> None:
    push(kpi, engineer, (0, 95.0))
    push(kpi, engineer, (0, 30.0))  # the same moment again: an update, not a new value
    assert Measurement.objects.filter(kpi=kpi).count() == 1
    assert transitions(kpi) == [("healthy", "critical")]


def test_a_run_value_is_checked_too(
    kpi: KPI,
    ops_job: Job,  # noqa: F811
    engineer: Any,
    pm: Any,
    stakeholder: Any,
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = {"now": 95.0}
    calculation = sources.Calculation("tests.value", "A value", lambda job: value["now"])
    monkeypatch.setitem(sources.CALCULATIONS, "tests.value", calculation)
    job = job_services.job_update(job=ops_job, user=engineer, calculation="tests.value")

    # The first run ten minutes ago, the second now (a run may not be dated in the future).
    earlier = timezone.now() - dt.timedelta(minutes=10)
    assert job_services.run_execute(run_id=scheduled_run(job, now=earlier).pk).state == (
        "succeeded"
    )
    assert kpi_alerts(kpi) == []

    value["now"] = 45.0
    assert job_services.run_execute(run_id=scheduled_run(job).pk).state == ("succeeded")
    (alert,) = kpi_alerts(kpi)
    assert (alert.from_status, alert.to_status, alert.value) == ("healthy", "critical", 45.0)
    assert set(alert.recipients.all()) == {pm, stakeholder}


def test_a_trial_run_writes_no_value_and_records_no_alert(
    kpi: KPI,
    ops_job: Job,  # noqa: F811
    engineer: Any,
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calculation = sources.Calculation("tests.low", "Low", lambda job: 1.0)
    monkeypatch.setitem(sources.CALCULATIONS, "tests.low", calculation)
    job = job_services.job_update(job=ops_job, user=engineer, calculation="tests.low")
    run = job_services.run_request(job=job, user=engineer, trigger=Trigger.TRIAL)
    assert job_services.run_execute(run_id=run.pk).state == RunState.SUCCEEDED
    assert not Alert.objects.exists()
    assert not Measurement.objects.filter(kpi=kpi).exists()


# Failed runs


def failing(monkeypatch: pytest.MonkeyPatch, error: type[Exception], message: str) -> str:
    def fail(job: Job) -> float:
        raise error(message)

    monkeypatch.setitem(
        sources.CALCULATIONS, "tests.fail", sources.Calculation("tests.fail", "Fails", fail)
    )
    return "tests.fail"


@pytest.fixture
def team(ops_initiative: Initiative, pm: Any, devops: Any, make_user: Any) -> dict[str, Any]:  # noqa: F811
    """The Ops team: engineer (data engineer, registered the job), devops (DevOps engineer),
    scientist (data scientist), and a data engineer who has left the team."""
    initiative_services.member_add(
        initiative=ops_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm
    )
    gone = make_user(Role.DATA_ENGINEER, username="gone")
    membership = initiative_services.member_add(
        initiative=ops_initiative, member=gone, role=TeamRole.DATA_ENGINEER, user=pm
    )
    initiative_services.member_remove(membership=membership, user=pm)
    return {"devops": devops, "gone": gone}


def test_a_run_failing_for_good_alerts_the_teams_engineers(
    ops_job: Job,  # noqa: F811
    engineer: Any,
    devops: Any,
    scientist: Any,
    pm: Any,
    stakeholder: Any,
    team: dict[str, Any],
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = job_services.job_update(
        job=ops_job,
        user=engineer,
        calculation=failing(monkeypatch, sources.SourceError, "the warehouse table is gone"),
    )
    run = scheduled_run(job)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = job_services.run_execute(run_id=run.pk)

    assert outcome.state == RunState.FAILED
    (alert,) = Alert.objects.all()
    assert alert.kind == RUN_FAILED
    assert (alert.subject, alert.object_type, alert.object_id) == (
        job.kpi.initiative.key,
        "run",
        str(run.pk),
    )
    assert (alert.detail_label, alert.detail_url) == ("job", f"/ops/jobs/{job.pk}/")
    assert alert.to_status == "failed"
    assert "the warehouse table is gone" in alert.message
    assert f"run {run.pk} failed" in alert.message
    assert set(alert.recipients.all()) == {engineer, devops}
    (payload,) = events(Event.RUN_FAILED)
    assert payload["data"]["run"] == run.pk
    assert payload["data"]["job"] == job.pk
    assert payload["data"]["attempt"] == 1
    assert payload["data"]["error"] == "the warehouse table is gone"
    assert len(callbacks) == 2  # the mail and the webhook delivery, after the commit


def test_no_alert_while_a_retry_will_happen(
    ops_job: Job,  # noqa: F811
    engineer: Any,
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = job_services.job_update(
        job=ops_job,
        user=engineer,
        max_retries=2,
        calculation=failing(monkeypatch, sources.TransientSourceError, "warehouse restarting"),
    )
    run = scheduled_run(job)

    assert job_services.run_execute(run_id=run.pk).state == RunState.QUEUED
    assert job_services.run_execute(run_id=run.pk).state == RunState.QUEUED
    assert not Alert.objects.exists()
    assert events(Event.RUN_FAILED) == []

    assert job_services.run_execute(run_id=run.pk).state == RunState.FAILED
    (alert,) = Alert.objects.all()
    assert alert.kind == RUN_FAILED
    assert len(events(Event.RUN_FAILED)) == 1
    assert events(Event.RUN_FAILED)[0]["data"]["attempt"] == 3

    # Executing the finished run again (a redelivered message) records nothing more.
    assert job_services.run_execute(run_id=run.pk).state == RunState.FAILED
    assert Alert.objects.count() == 1


def test_a_failing_trial_run_records_no_alert(
    ops_job: Job,  # noqa: F811
    engineer: Any,
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = job_services.job_update(
        job=ops_job,
        user=engineer,
        max_retries=0,
        calculation=failing(monkeypatch, sources.SourceError, "broken"),
    )
    run = job_services.run_request(job=job, user=engineer, trigger=Trigger.TRIAL)

    assert job_services.run_execute(run_id=run.pk).state == RunState.FAILED
    assert not Alert.objects.exists()
    assert events(Event.RUN_FAILED) == []


def test_a_failing_run_now_is_alerted(
    ops_job: Job,  # noqa: F811
    engineer: Any,
    pm: Any,
    hook: WebhookSubscription,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = job_services.job_update(
        job=ops_job,
        user=engineer,
        calculation=failing(monkeypatch, sources.SourceError, "broken"),
    )
    run = job_services.run_request(job=job, user=pm, trigger=Trigger.MANUAL)
    assert job_services.run_execute(run_id=run.pk).state == RunState.FAILED
    assert Alert.objects.get().object_id == str(run.pk)


# Mail


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://bizdevops.example.com/"
    mail.outbox = []


def test_alert_email_goes_once_to_the_recipients_with_an_address(
    locmem: None,
    kpi: KPI,
    engineer: Any,
    pm: Any,
    stakeholder: Any,
    second_stakeholder: Any,
) -> None:
    type(second_stakeholder).objects.filter(pk=second_stakeholder.pk).update(email="")
    push(kpi, engineer, (0, 70.0))
    alert = Alert.objects.get()
    assert alert.recipients.count() == 3

    assert services.alert_email(alert) == 1

    (message,) = mail.outbox
    assert message.to == ["pm@example.com", "stakeholder@example.com"]
    assert message.subject == f"[BizDevOps] {alert.message}"
    assert alert.message in message.body
    assert f"https://bizdevops.example.com/initiatives/{kpi.initiative.key}/dashboard/" in (
        message.body
    )


def test_the_mail_task_sends_the_alert(locmem: None, kpi: KPI, engineer: Any) -> None:
    push(kpi, engineer, (0, 10.0))
    # The task's body, run in this process (no broker involved).
    assert send_alert_email.run(Alert.objects.get().pk) == 1
    assert len(mail.outbox) == 1


def test_no_address_no_mail(
    locmem: None, kpi: KPI, engineer: Any, pm: Any, stakeholder: Any
) -> None:
    type(pm).objects.filter(pk__in=[pm.pk, stakeholder.pk]).update(email="")
    push(kpi, engineer, (0, 70.0))
    assert services.alert_email(Alert.objects.get()) == 0
    assert mail.outbox == []


def test_a_run_that_failed_with_a_multi_line_error_is_mailed(
    locmem: None,
    ops_job: Job,  # noqa: F811
    engineer: Any,
    unreachable_source: DataSource,  # noqa: F811
) -> None:
    """PostgreSQL's "connection refused" message has several lines; the alert mail's subject
    is built from the alert message, and a mail header cannot contain a newline."""
    job = job_services.job_update(
        job=ops_job,
        user=engineer,
        source_kind="sql",
        data_source=unreachable_source,
        sql="SELECT 1",
        max_retries=0,
        timeout_seconds=2,
    )
    run = scheduled_run(job)
    assert job_services.run_execute(run_id=run.pk).state == RunState.FAILED
    alert = Alert.objects.get(kind=RUN_FAILED)
    assert "\n" in Run.objects.get(pk=run.pk).error  # the real message of libpq

    assert services.alert_email(alert) == 1

    (message,) = mail.outbox
    assert message.to == ["engineer@example.com"]
    assert "\n" not in message.subject and "\r" not in message.subject


# /alerts/


def test_alerts_page_lists_the_users_alerts_only(
    client: Any,
    kpi: KPI,
    ops_job: Job,  # noqa: F811
    engineer: Any,
    stakeholder: Any,
    outsider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    push(kpi, engineer, (0, 70.0))
    status_alert = Alert.objects.get()
    job = job_services.job_update(
        job=ops_job, user=engineer, calculation=failing(monkeypatch, sources.SourceError, "x")
    )
    job_services.run_execute(run_id=scheduled_run(job).pk)
    failed_alert = Alert.objects.get(kind=RUN_FAILED)

    client.force_login(stakeholder)
    content = client.get("/alerts/").content.decode()
    assert f'data-alert="{status_alert.pk}"' in content
    assert f'data-alert="{failed_alert.pk}"' not in content
    assert status_alert.message in content

    client.force_login(engineer)
    content = client.get("/alerts/").content.decode()
    assert f'data-alert="{failed_alert.pk}"' in content
    assert f'data-alert="{status_alert.pk}"' not in content
    assert f"/ops/jobs/{job.pk}/" in content

    client.force_login(outsider)
    content = client.get("/alerts/").content.decode()
    assert "data-alert=" not in content
    assert "No alert yet" in content


def test_alerts_page_needs_a_login(client: Any) -> None:
    response = client.get("/alerts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_second_message_of_the_mail_task_sends_no_second_mail(
    locmem: None, kpi: KPI, engineer: Any
) -> None:
    push(kpi, engineer, (0, 10.0))
    alert_id = Alert.objects.get().pk

    assert send_alert_email.run(alert_id) == 1
    assert send_alert_email.run(alert_id) == 0  # the outbox sent the message twice

    assert len(mail.outbox) == 1
    assert AlertMailing.objects.get(alert_id=alert_id).sent_at is not None


def test_a_mail_server_that_is_away_is_tried_again_later(
    settings: Any, kpi: KPI, engineer: Any
) -> None:
    from bizdevops.models import OutboxMessage

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    push(kpi, engineer, (0, 10.0))
    alert = Alert.objects.get()
    OutboxMessage.objects.all().delete()  # the first message was taken

    assert services.alert_email(alert) == 0

    mailing = AlertMailing.objects.get(alert=alert)
    assert (mailing.attempts, mailing.sent_at) == (1, None)
    assert "ConnectionRefusedError" in mailing.last_error
    (retry,) = OutboxMessage.objects.filter(task=services.SEND_ALERT_EMAIL)
    assert retry.args == [alert.pk]
    assert retry.available_at > timezone.now() + dt.timedelta(seconds=50)

    AlertMailing.objects.filter(pk=mailing.pk).update(attempts=services.MAIL_ATTEMPTS)
    OutboxMessage.objects.all().delete()
    assert services.alert_email(alert) == 0  # given up: no more tries
    assert not OutboxMessage.objects.exists()
