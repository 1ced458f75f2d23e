"""The broker (Redis) is away at the moment of commit: a gate decision, a "run now" and the
dispatcher still succeed, and their work waits in the outbox until the broker is back.
Before the outbox, the decision answered 500 although it was committed, its webhook stayed
pending for good, and "run now" and the dispatcher raised. Transactional tests: the commit
(and what runs after it) is the point; the broker is a real Celery connection to a port where
nothing listens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from bizdevops import outbox
from bizdevops.models import OutboxMessage
from jobs import services as job_services
from jobs.models import Job, Run
from notifications import services as notification_services
from notifications.models import DeliveryState, Event, WebhookDelivery
from phases.models import GateDecision
from tests.api.helpers import API, authenticate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def broker_back(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The broker answers again: what the sweep publishes is recorded."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(outbox, "send", lambda name, args, options: sent.append((name, args)))
    OutboxMessage.objects.update(available_at=timezone.now())  # the backoff has passed
    return sent


def test_a_gate_decision_is_201_and_its_webhook_is_delivered_once_the_broker_is_back(
    ready_initiative: Any, pm: Any, admin_user: Any, unreachable_broker: None, monkeypatch: Any
):
    notification_services.webhook_subscribe(
        user=admin_user,
        url="http://127.0.0.1:9/hook",  # never called here: the worker would POST
        events=[Event.INITIATIVE_DECIDED],
        allow_private_addresses=True,
    )
    client = authenticate(APIClient(), pm)

    response = client.post(
        f"{API}/initiatives/{ready_initiative.key}/decisions/",
        {"decision": "go", "rationale": "The business case holds."},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert GateDecision.objects.filter(initiative=ready_initiative).count() == 1
    delivery = WebhookDelivery.objects.get(event=Event.INITIATIVE_DECIDED)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    waiting = OutboxMessage.objects.get(task=notification_services.DELIVER_WEBHOOK)
    assert waiting.args == [delivery.pk]
    assert waiting.send_failures == 1

    sent = broker_back(monkeypatch)
    outbox.sweep()

    assert sent.count((notification_services.DELIVER_WEBHOOK, (delivery.pk,))) == 1
    assert not OutboxMessage.objects.filter(task=notification_services.DELIVER_WEBHOOK).exists()


def test_run_now_is_202_and_the_run_is_sent_once_the_broker_is_back(
    ops_job: Job, engineer: Any, unreachable_broker: None, monkeypatch: Any
):
    client = authenticate(APIClient(), engineer)

    response = client.post(f"{API}/jobs/{ops_job.pk}/run/", {"trigger": "manual"}, format="json")

    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["run"])
    assert (run.state, run.deliveries) == ("queued", 1)
    assert OutboxMessage.objects.filter(task=job_services.EXECUTE_RUN, args=[run.pk]).exists()

    sent = broker_back(monkeypatch)
    outbox.sweep()

    assert [args for name, args in sent if name == job_services.EXECUTE_RUN] == [(run.pk,)]


def test_the_dispatcher_with_the_broker_away_creates_the_runs_and_keeps_their_messages(
    ops_job: Job, unreachable_broker: None, monkeypatch: Any
):
    Job.objects.filter(pk=ops_job.pk).update(next_run_at=timezone.now() - dt.timedelta(minutes=1))

    created = job_services.dispatch_due()

    assert len(created) == 1
    assert OutboxMessage.objects.filter(task=job_services.EXECUTE_RUN, args=created).exists()
    sent = broker_back(monkeypatch)
    outbox.sweep()
    assert [args for name, args in sent if name == job_services.EXECUTE_RUN] == [(created[0],)]
