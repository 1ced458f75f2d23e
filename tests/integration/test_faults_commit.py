"""Fault: the broker (the test's own Redis) is away at the moment of commit, while a real
worker (with the outbox sweep) runs on it. A gate decision and a "run now" through the API,
and the dispatcher called here as beat's task would call it, commit while Redis is down;
Redis comes back (empty, same port) a few seconds later.

Expected: the requests succeed (201, 202, runs created), their work waits in the outbox, and
once Redis is back the sweep sends it: the decision's webhook is delivered exactly once and
each run executes once with one measurement; the outbox is empty.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from bizdevops.models import OutboxMessage
from initiatives.models import Phase
from jobs import services as job_services
from jobs.models import Job, Run, RunState
from kpis.models import Measurement
from notifications import services as notification_services
from notifications.models import DeliveryState, Event, WebhookDelivery
from phases.models import GateDecision
from tests.api.helpers import API, authenticate
from tests.integration.faults import RedisServer, each_once, tally, wait_quiet
from tests.integration.helpers import INTEGRATION, Portfolio, wait_for
from tests.integration.worker_calculations import ANSWER_VALUE
from tests.servers import LocalServer, answer

pytestmark = INTEGRATION

OUTAGE_SECONDS = 4.0
BACK_WITHIN_SECONDS = 30.0
FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]


@pytest.fixture
def broker_url(own_redis: RedisServer) -> str:
    return own_redis.url


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    server = LocalServer(answer(200, b"{}"))
    yield server
    server.close()


def describe(jobs: list[Job]) -> Any:
    return (
        list(Run.objects.filter(job__in=jobs).values_list("pk", "state", "attempt", "error")),
        list(WebhookDelivery.objects.values_list("pk", "state", "attempts", "last_error")),
        list(OutboxMessage.objects.values_list("task", "args", "send_failures", "last_error")),
    )


def test_work_committed_while_redis_is_down_is_done_once_when_it_is_back(
    portfolio: Portfolio,
    start_worker: Any,
    own_redis: RedisServer,
    receiver: LocalServer,
    admin_user: Any,
    settings: Any,
) -> None:
    ops = portfolio.initiative("Fraud scoring")
    ready = portfolio.initiative("Churn radar", phase=Phase.BIZ)  # its Biz → Dev gate holds
    manual = portfolio.job(ops, "Run now")
    scheduled = portfolio.job(ops, "Scheduled")
    jobs = [manual, scheduled]
    notification_services.webhook_subscribe(
        user=admin_user,
        url=receiver.url("/hook"),
        events=[Event.INITIATIVE_DECIDED],
        allow_private_addresses=True,
    )
    worker = start_worker(beat=True, DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY)
    as_pm = authenticate(APIClient(), portfolio.pm)
    as_engineer = authenticate(APIClient(), portfolio.engineer)

    with own_redis.down():
        outage_started = time.monotonic()
        decided = as_pm.post(
            f"{API}/initiatives/{ready.key}/decisions/",
            {"decision": "go", "rationale": "The business case holds."},
            format="json",
        )
        assert decided.status_code == 201, decided.content
        ran = as_engineer.post(f"{API}/jobs/{manual.pk}/run/", {"trigger": "manual"}, format="json")
        assert ran.status_code == 202, ran.content
        portfolio.make_due(scheduled, at=timezone.now().replace(microsecond=0))
        dispatched = job_services.dispatch_due()
        assert len(dispatched) == 1
        requests_seconds = time.monotonic() - outage_started
        waiting = OutboxMessage.objects.filter(
            task__in=[job_services.EXECUTE_RUN, notification_services.DELIVER_WEBHOOK]
        ).count()
        assert waiting == 3, describe(jobs)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        assert worker.alive, worker.log_tail()
        assert not Run.objects.filter(job__in=jobs, state__in=FINISHED).exists()

    back = time.monotonic()
    wait_for(
        lambda: (
            Run.objects.filter(job__in=jobs, state__in=FINISHED).count() == 2
            and not WebhookDelivery.objects.filter(state=DeliveryState.PENDING).exists()
        ),
        "the runs and the webhook of the outage to be sent by the sweep and done",
        timeout=BACK_WITHIN_SECONDS,
        describe=lambda: describe(jobs),
    )
    done_seconds = time.monotonic() - back
    wait_quiet(3)  # room for a late duplicate

    got = tally(jobs=jobs, receiver=receiver)
    expected = each_once(2, deliveries=1, posts=1)
    print(
        f"\nRedis down {OUTAGE_SECONDS:g} s (the three requests took {requests_seconds:.1f} s);"
        f" all done {done_seconds:.1f} s after it was back"
    )
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    assert GateDecision.objects.filter(initiative=ready).count() == 1
    assert Run.objects.get(job=manual).pk == ran.json()["run"]
    assert Run.objects.get(job=scheduled).pk == dispatched[0]
    for job in jobs:
        run = Run.objects.get(job=job)
        assert (run.state, run.attempt, run.deliveries, run.value) == (
            RunState.SUCCEEDED,
            1,
            1,
            ANSWER_VALUE,
        ), run.error
        assert run.worker == worker.name
        assert Measurement.objects.get(kpi=job.kpi).run_id == run.pk
    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert request.headers.get("x-bizdevops-delivery") == str(delivery.pk)
    assert worker.alive
