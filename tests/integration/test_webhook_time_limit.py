"""A webhook delivery on a real worker is stopped at the task's soft time limit: the attempt
is recorded as failed and retried with the usual backoff, until WEBHOOK_MAX_ATTEMPTS.

The worker gets a POST deadline (WEBHOOK_TIMEOUT_SECONDS) longer than its soft time limit, so
the limit, not the deadline, is what stops the hanging receiver here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from notifications import services
from notifications.models import DeliveryState, Event, WebhookDelivery
from tests.integration.helpers import INTEGRATION, Worker, wait_for
from tests.servers import LocalServer, Request

pytestmark = INTEGRATION


def _hang(_request: Request, _conn: Any) -> None:
    time.sleep(60)


@pytest.fixture
def hanging_receiver() -> Iterator[LocalServer]:
    server = LocalServer(_hang)
    yield server
    server.close()


@pytest.fixture
def limited_worker(start_worker: Any, settings: Any) -> Worker:
    # The sender (this process) puts the limits into the message; the worker gets the same
    # settings.
    settings.WEBHOOK_TIMEOUT_SECONDS = 60
    settings.WEBHOOK_SOFT_TIME_LIMIT = 1
    settings.WEBHOOK_TIME_LIMIT = 30
    return start_worker(
        beat=True,  # the outbox sweep sends the retry
        DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY,  # the signing secret is encrypted with it
        WEBHOOK_TIMEOUT_SECONDS="60",
        WEBHOOK_SOFT_TIME_LIMIT="1",
        WEBHOOK_TIME_LIMIT="30",
        WEBHOOK_MAX_ATTEMPTS="2",
    )


def test_an_attempt_past_the_soft_time_limit_fails_and_is_retried(
    admin_user: Any, hanging_receiver: LocalServer, limited_worker: Worker
) -> None:
    services.webhook_subscribe(
        user=admin_user,
        url=hanging_receiver.url("/hook"),
        events=[Event.RUN_FAILED],
        allow_private_addresses=True,
    )
    (delivery_id,) = services.event_publish(event=Event.RUN_FAILED, payload={"run": 1})

    wait_for(
        lambda: WebhookDelivery.objects.filter(pk=delivery_id, state=DeliveryState.FAILED).exists(),
        "the delivery to fail",
        timeout=25,
        describe=lambda: WebhookDelivery.objects.filter(pk=delivery_id).values(
            "state", "attempts", "last_error"
        )[0],
    )

    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.attempts, delivery.status_code) == (2, None)
    assert delivery.last_error == "The delivery exceeded its time limit."
    assert len(hanging_receiver.requests) == 2  # the first attempt and one retry
    assert "attempt failed; next in 2s" in limited_worker.log()  # the first backoff
