"""Faults of the broker, on the test's own Redis (never the shared one), with a real worker
and beat on it. The Redis has no persistence: after a stop it comes back empty, on the same
port.

- An outage of BIZDEVOPS_TEST_REDIS_OUTAGE_SECONDS (30 s by default) between commits:
  requests made during it do not fail (the work waits in the outbox), the worker and beat
  reconnect, and every run requested or dispatched before, during and after it executes
  exactly once with one measurement; the webhook of a decision made during it arrives once.
- A crash that loses the messages Redis held: the reapers resend the runs and the webhook
  delivery (each runs or arrives once).
- A freeze (the server hangs instead of refusing): nothing is lost, and a request waits at
  most the broker's socket timeout (3 s), not as long as Redis hangs.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from django.utils import timezone

from bizdevops.celery import app
from bizdevops.models import OutboxMessage
from jobs import services as job_services
from jobs.models import Job, Run, RunState
from kpis.models import Measurement
from notifications import services as notification_services
from notifications.models import DeliveryState, Event, WebhookDelivery
from phases.models import Decision
from tests.factories import decide
from tests.integration.faults import RedisServer, each_once, tally
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.integration.worker_calculations import ANSWER_VALUE
from tests.servers import LocalServer, answer

pytestmark = INTEGRATION

OUTAGE_SECONDS = float(os.environ.get("BIZDEVOPS_TEST_REDIS_OUTAGE_SECONDS", "30"))
# Celery's consumer retries the connection with growing pauses (2, 4, 6 ... s): after an
# outage of N seconds it is back at most ~N/2 + a few seconds later.
RECONNECT_SECONDS = max(60.0, OUTAGE_SECONDS)
# What a request may lose to a broker that does not answer (outbox.CONNECT_TIMEOUT_SECONDS
# is 2 s, and a page must not take much longer than that).
REQUEST_BUDGET_SECONDS = 5.0


@pytest.fixture
def broker_url(own_redis: RedisServer) -> str:
    return own_redis.url


@pytest.fixture
def receiver() -> Any:
    server = LocalServer(answer(200, b"{}"))
    yield server
    server.close()


def finished(*run_ids: int) -> bool:
    done = [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]
    return Run.objects.filter(pk__in=run_ids, state__in=done).count() == len(run_ids)


def describe_runs(jobs: list[Job]) -> Any:
    return list(
        Run.objects.filter(job__in=jobs).values_list(
            "pk", "job_id", "state", "attempt", "deliveries", "error"
        )
    ), list(OutboxMessage.objects.values_list("task", "args", "send_failures", "last_error"))


def answers_ping(worker: Worker) -> bool:
    try:
        replies = app.control.ping(destination=[worker.name], timeout=1)
    except Exception:  # noqa: BLE001  (the broker is still away: not yet)
        return False
    return any(worker.name in reply for reply in replies)


def test_a_redis_outage_between_commits_loses_and_duplicates_nothing(
    portfolio: Portfolio,
    start_worker: Any,
    start_beat: Any,
    own_redis: RedisServer,
    receiver: LocalServer,
    admin_user: Any,
    settings: Any,
):
    initiative = portfolio.initiative("Fraud scoring")
    held = portfolio.initiative("Churn radar")
    names = ["before", "during", "after"]
    manual = {name: portfolio.job(initiative, f"Run now {name}") for name in names}
    scheduled = {name: portfolio.job(initiative, f"Scheduled {name}") for name in names}
    jobs = [*manual.values(), *scheduled.values()]
    notification_services.webhook_subscribe(
        user=admin_user,
        url=receiver.url("/hook"),
        events=[Event.INITIATIVE_DECIDED],
        allow_private_addresses=True,
    )
    worker = start_worker(DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY)
    beat = start_beat(KPI_DISPATCH_INTERVAL_SECONDS="1", OUTBOX_SWEEP_INTERVAL_SECONDS="1")

    def the_phase(name: str) -> list[int]:
        """One run by hand, one scheduled run, and (during) a decision with its webhook."""
        ids = [job_services.run_request(job=manual[name], user=portfolio.engineer).pk]
        portfolio.make_due(scheduled[name], at=timezone.now().replace(microsecond=0))
        ids.append(
            wait_for(
                lambda: (
                    Run.objects.filter(job=scheduled[name]).values_list("pk", flat=True).first()
                ),
                f"beat's dispatcher to create the {name!r} scheduled run",
                timeout=RECONNECT_SECONDS,
                describe=lambda: describe_runs(jobs),
            )
        )
        return ids

    before = the_phase("before")
    wait_for(
        lambda: finished(*before),
        "the runs before the outage",
        describe=lambda: describe_runs(jobs),
    )

    with own_redis.down():
        outage_started = time.monotonic()
        # Nothing of this fails for the caller: the messages wait in the outbox.
        during = [job_services.run_request(job=manual["during"], user=portfolio.engineer).pk]
        decide(held, Decision.HOLD, portfolio.pm)
        # beat cannot send the dispatcher now: this process dispatches, as a web request could.
        portfolio.make_due(scheduled["during"], at=timezone.now().replace(microsecond=0))
        during += job_services.dispatch_due()
        blocked_seconds = time.monotonic() - outage_started
        assert len(during) == 2
        # Three commits whose relay failed (connection refused): no caller waits long.
        assert blocked_seconds < REQUEST_BUDGET_SECONDS, blocked_seconds
        waiting = OutboxMessage.objects.count()
        assert waiting == 3, list(OutboxMessage.objects.values_list("task", "args"))
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        assert worker.alive, worker.log_tail()
        assert beat.alive, beat.log_tail()
        assert not finished(*during)

    reconnected = time.monotonic()
    wait_for(
        lambda: answers_ping(worker),
        "the worker to reconnect to Redis",
        timeout=RECONNECT_SECONDS,
        describe=worker.log_tail,
    )
    reconnect_seconds = time.monotonic() - reconnected
    wait_for(
        lambda: finished(*during),
        "the runs of the outage to be sent by the sweep and executed",
        timeout=RECONNECT_SECONDS,
        describe=lambda: describe_runs(jobs),
    )
    # (Its scheduled run is created by beat's dispatcher: beat's sends arrive again.)
    after = the_phase("after")
    wait_for(
        lambda: finished(*after), "the runs after the outage", describe=lambda: describe_runs(jobs)
    )
    wait_for(
        lambda: not WebhookDelivery.objects.filter(state=DeliveryState.PENDING).exists(),
        "the webhook of the decision to be delivered",
        timeout=RECONNECT_SECONDS,
    )
    time.sleep(3)  # room for a late duplicate to show up

    got = tally(jobs=jobs, receiver=receiver)
    expected = each_once(6, deliveries=1, posts=1)
    print(
        f"\nRedis outage {OUTAGE_SECONDS:g} s: the 3 writes during it took {blocked_seconds:.2f} s,"
        f" the worker answered {reconnect_seconds:.1f} s after Redis was back"
    )
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    for job in jobs:
        run = Run.objects.get(job=job)
        assert (run.state, run.attempt, run.deliveries) == (RunState.SUCCEEDED, 1, 1), run.error
        assert run.worker == worker.name
        measurement = Measurement.objects.get(kpi=job.kpi)
        assert (measurement.run_id, measurement.value) == (run.pk, ANSWER_VALUE)
    assert worker.alive and beat.alive


# A Redis without persistence that crashes loses the messages it holds (with AOF `everysec`,
# as in docker-compose.yml, the last second's). The reaper must resend the runs.
FAST_REAPER = {"KPI_REAPER_INTERVAL_SECONDS": "1", "OUTBOX_SWEEP_INTERVAL_SECONDS": "1"}


def test_runs_whose_messages_died_with_redis_are_resent_by_the_reaper_and_run_once(
    portfolio: Portfolio, start_worker: Any, start_beat: Any, own_redis: RedisServer
):
    initiative = portfolio.initiative("Fraud scoring")
    jobs = [portfolio.job(initiative, f"KPI {n}", timeout_seconds=1) for n in range(3)]
    runs = [job_services.run_request(job=job, user=portfolio.engineer).pk for job in jobs]
    assert OutboxMessage.objects.count() == 0  # handed to Redis, which holds them
    own_redis.stop(kill=True)
    own_redis.start()  # empty
    # The reaper resends a run queued longer than its timeout (1 s) plus the grace (1 s).
    worker = start_worker(KPI_RUN_GRACE_SECONDS="1")
    beat = start_beat(**FAST_REAPER)

    wait_for(
        lambda: finished(*runs),
        "the reaper to resend the lost runs and the worker to execute them",
        describe=lambda: describe_runs(jobs),
    )
    time.sleep(3)  # further reaper rounds must leave finished runs alone

    got = tally(jobs=jobs, webhooks=False)
    expected = each_once(3) | {
        "runs sent more than once": 3,  # by the application, once lost: the reaper's resend
    }
    print(f"\nexpected {expected}\ngot      {got}")
    assert got == expected
    for run in Run.objects.filter(pk__in=runs):
        assert (run.state, run.attempt, run.deliveries) == (RunState.SUCCEEDED, 1, 2)
        assert run.worker == worker.name
    assert "Resent" in worker.log(), worker.log_tail()  # by the reaper, on the worker
    assert beat.alive


def test_a_webhook_whose_message_died_with_redis_is_delivered_once(
    start_worker: Any,
    start_beat: Any,
    own_redis: RedisServer,
    receiver: LocalServer,
    admin_user: Any,
    settings: Any,
):
    notification_services.webhook_subscribe(
        user=admin_user,
        url=receiver.url("/hook"),
        events=[Event.RUN_FAILED],
        allow_private_addresses=True,
    )
    (delivery_id,) = notification_services.event_publish(event=Event.RUN_FAILED, payload={"run": 1})
    assert OutboxMessage.objects.count() == 0  # handed to Redis, which holds it
    own_redis.stop(kill=True)
    own_redis.start()  # empty
    # The deliveries' reaper judges a delivery lost once it is older than the hard time
    # limit of an attempt: 5 s here.
    start_worker(
        DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY,
        KPI_RUN_GRACE_SECONDS="1",
        WEBHOOK_SOFT_TIME_LIMIT="4",
        WEBHOOK_TIME_LIMIT="5",
    )
    start_beat(**FAST_REAPER)

    wait_for(
        lambda: WebhookDelivery.objects.filter(
            pk=delivery_id, state=DeliveryState.DELIVERED
        ).exists(),
        "the lost webhook to be delivered",
        timeout=20,
        describe=lambda: WebhookDelivery.objects.filter(pk=delivery_id).values("state", "attempts")[
            0
        ],
    )
    assert len(receiver.requests) == 1


FREEZE_SECONDS = float(os.environ.get("BIZDEVOPS_TEST_REDIS_FREEZE_SECONDS", "15"))


def test_a_frozen_redis_loses_nothing_and_does_not_hold_up_requests(
    portfolio: Portfolio, start_worker: Any, start_beat: Any, own_redis: RedisServer
):
    """Redis hangs (SIGSTOP: a stuck or partitioned server accepts connections but never
    answers) instead of refusing them. A request in this process (as in the web app) must
    come back within REQUEST_BUDGET_SECONDS with its run in the outbox, and the run must
    execute once when Redis answers again."""
    initiative = portfolio.initiative("Fraud scoring")
    jobs = [portfolio.job(initiative, f"KPI {n}") for n in range(2)]
    worker = start_worker()
    start_beat(KPI_DISPATCH_INTERVAL_SECONDS="1", OUTBOX_SWEEP_INTERVAL_SECONDS="1")
    before = job_services.run_request(job=jobs[0], user=portfolio.engineer).pk
    wait_for(lambda: finished(before), "the run before the freeze")

    with own_redis.frozen():
        # Thaw it from another thread in any case: the request below may hang until then.
        thaw = threading.Timer(FREEZE_SECONDS, own_redis.thaw)
        thaw.start()
        try:
            started = time.monotonic()
            during = job_services.run_request(job=jobs[1], user=portfolio.engineer).pk
            request_seconds = time.monotonic() - started
        finally:
            thaw.join()
    wait_for(
        lambda: finished(during),
        "the run requested during the freeze",
        timeout=RECONNECT_SECONDS,
        describe=lambda: describe_runs(jobs),
    )
    time.sleep(3)

    got = tally(jobs=jobs, webhooks=False)
    executed_twice = got["runs executed more than once"]  # a message sent twice may be
    expected = each_once(2) | {
        "runs executed more than once": executed_twice,
    }
    print(f"\nRedis frozen {FREEZE_SECONDS:g} s: the request took {request_seconds:.1f} s")
    print(f"expected {expected}\ngot      {got}")
    assert got == expected
    assert worker.alive
    # Before the broker's socket timeout, the request hung as long as Redis was frozen.
    assert request_seconds <= REQUEST_BUDGET_SECONDS
