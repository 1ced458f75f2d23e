"""Signed webhooks: subscriptions (admins only, known events, no internal addresses unless
allowed), deliveries recorded in the caller's transaction and POSTed with an HMAC-SHA256
signature to a real local receiver, retries with backoff until WEBHOOK_MAX_ATTEMPTS, no
redirects followed, a deadline for the whole POST, no receiver body read, time limits on the
task; events published by gate decisions and handovers.

The on-commit callbacks that would enqueue the Celery task are captured, not sent to a broker
(one test runs them with `outbox.send` replaced): the tests call delivery_attempt() as the task
would. The task on a real worker: tests/integration/test_webhook_time_limit.py."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from bizdevops import crypto, outbox
from bizdevops.errors import DomainError
from initiatives import services as initiative_services
from initiatives.models import Initiative
from notifications import services
from notifications.models import DeliveryState, Event, WebhookDelivery, WebhookSubscription
from notifications.tasks import deliver_webhook
from phases.models import Decision
from tests.factories import decide
from tests.servers import answer, drip, gzip_of_zeros, peak_rss_growth

pytestmark = pytest.mark.django_db

PAYLOAD = {"initiative": "BDO-1", "kpi": {"id": 1, "name": "Fraud caught"}, "to": "critical"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 (a random port), in a thread. `status` is what it
    answers; `location` makes it redirect; `delay` makes it slow."""

    requests: list[Received] = field(default_factory=list)
    status: int = 200
    location: str = ""
    delay: float = 0.0
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Received(self.command, self.path, dict(self.headers), body))
            if state.delay:
                time.sleep(state.delay)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            # The sender reads no body: it may have hung up already.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(b"ok")

        do_POST = _record  # noqa: N815
        do_GET = _record  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def subscribe(
    user: Any, url: str, events: list[str] | None = None, *, private: bool = True
) -> tuple[WebhookSubscription, str]:
    return services.webhook_subscribe(
        user=user,
        url=url,
        events=events or [Event.KPI_STATUS_CHANGED],
        allow_private_addresses=private,
    )


def publish(capture: Any, event: Event = Event.KPI_STATUS_CHANGED) -> tuple[list[int], int]:
    """Publish an event; returns the delivery ids and the number of on-commit callbacks."""
    with capture(execute=False) as callbacks:
        ids = services.event_publish(event=event, payload=PAYLOAD)
    return ids, len(callbacks)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Subscribing


def test_only_admins_subscribe(make_user: Any, pm: Any) -> None:
    staff = make_user(username="staff", is_staff=True)  # staff is not admin
    for user in (pm, staff):
        with pytest.raises(PermissionDenied):
            subscribe(user, "https://93.184.216.34/hook", private=False)
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    "events",
    [[], ["kpi.deleted"], ["kpi.status_changed", "initiative.created"], ["KPI.STATUS_CHANGED"]],
)
def test_events_must_be_known(admin_user: Any, events: list[str]) -> None:
    with pytest.raises(DomainError) as refused:
        services.webhook_subscribe(user=admin_user, url="https://93.184.216.34/h", events=events)
    assert refused.value.field == "events"
    assert not WebhookSubscription.objects.exists()


def test_subscribe_returns_the_secret_once_and_stores_it_encrypted(admin_user: Any) -> None:
    subscription, secret = services.webhook_subscribe(
        user=admin_user,
        url="https://93.184.216.34/hook",  # a public address (no DNS needed)
        events=["run.failed", "kpi.status_changed", "run.failed"],
        description="Ops channel",
    )
    subscription.refresh_from_db()
    assert subscription.events == ["kpi.status_changed", "run.failed"]
    assert subscription.active and not subscription.allow_private_addresses
    assert subscription.created_by == admin_user
    assert len(secret) >= 32
    assert secret not in subscription.secret_encrypted
    assert crypto.decrypt(subscription.secret_encrypted) == secret
    _, other = services.webhook_subscribe(
        user=admin_user, url="https://93.184.216.34/hook", events=["run.failed"]
    )
    assert other != secret


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://172.16.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/hook",  # shared address space
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
    ],
)
def test_private_addresses_are_refused_unless_allowed(admin_user: Any, url: str) -> None:
    with pytest.raises(DomainError) as refused:
        subscribe(admin_user, url, private=False)
    assert refused.value.field == "url"
    assert not WebhookSubscription.objects.exists()

    subscription, _ = subscribe(admin_user, url, private=True)
    assert subscription.allow_private_addresses


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/hook", "file:///etc/passwd", "93.184.216.34/hook", "http:///x"]
)
def test_only_http_urls(admin_user: Any, url: str) -> None:
    with pytest.raises(DomainError) as refused:
        subscribe(admin_user, url, private=True)
    assert refused.value.field == "url"


# Publishing


def test_publish_records_a_delivery_per_subscribed_active_subscription(
    admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    url = "http://127.0.0.1:9/hook"
    status, _ = subscribe(admin_user, url, [Event.KPI_STATUS_CHANGED, Event.RUN_FAILED])
    subscribe(admin_user, url, [Event.INITIATIVE_DECIDED])  # another event
    inactive, _ = subscribe(admin_user, url, [Event.KPI_STATUS_CHANGED])
    WebhookSubscription.objects.filter(pk=inactive.pk).update(active=False)

    ids, callbacks = publish(django_capture_on_commit_callbacks)

    (delivery,) = WebhookDelivery.objects.all()
    assert ids == [delivery.pk]
    assert callbacks == 1  # sent once the transaction commits
    assert delivery.subscription == status
    assert (delivery.state, delivery.attempts, delivery.status_code) == ("pending", 0, None)
    assert delivery.event == "kpi.status_changed"
    assert delivery.payload["event"] == "kpi.status_changed"
    assert delivery.payload["data"] == PAYLOAD
    assert delivery.payload["sent_at"]


# Delivering to a real receiver


def test_delivery_posts_the_signed_json_body(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    _, secret = subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    assert services.delivery_attempt(delivery_id=delivery_id) is None

    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-BizDevOps-Event"] == "kpi.status_changed"
    assert request.headers["X-BizDevOps-Delivery"] == str(delivery_id)
    assert json.loads(request.body) == delivery.payload
    # The receiver's check: HMAC-SHA256 of the exact bytes received, with the secret that
    # subscribing returned.
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-BizDevOps-Signature"], expected)
    wrong = hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-BizDevOps-Signature"] != "sha256=" + wrong
    assert services.sign(secret, request.body) == expected

    assert delivery.state == DeliveryState.DELIVERED
    assert (delivery.status_code, delivery.attempts, delivery.last_error) == (200, 1, "")
    assert delivery.delivered_at is not None

    # Done: another attempt (a redelivered task) sends nothing.
    assert services.delivery_attempt(delivery_id=delivery_id) is None
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get(pk=delivery_id).attempts == 1


def test_each_subscription_gets_its_own_signature(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    _, first = subscribe(admin_user, f"{receiver.url}/a")
    _, second = subscribe(admin_user, f"{receiver.url}/b")
    ids, callbacks = publish(django_capture_on_commit_callbacks)
    assert len(ids) == callbacks == 2
    for delivery_id in ids:
        services.delivery_attempt(delivery_id=delivery_id)
    by_path = {r.path: r for r in receiver.requests}
    for path, secret in (("/a", first), ("/b", second)):
        body = by_path[path].body
        assert by_path[path].headers["X-BizDevOps-Signature"] == services.sign(secret, body)


def test_a_failing_receiver_is_retried_with_backoff_then_failed(
    settings: Any,
    admin_user: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.status = 500
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    delays = [services.delivery_attempt(delivery_id=delivery_id) for _ in range(3)]

    assert delays[0] is not None and delays[1] is not None
    assert 0 < delays[0] < delays[1]
    assert delays[2] is None  # failed for good: no more attempts
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.state == DeliveryState.FAILED
    assert (delivery.attempts, delivery.status_code) == (3, 500)
    assert "500" in delivery.last_error
    assert delivery.delivered_at is None
    assert len(receiver.requests) == 3
    # Every attempt carries the same delivery and a valid signature.
    assert {r.headers["X-BizDevOps-Delivery"] for r in receiver.requests} == {str(delivery_id)}

    assert services.delivery_attempt(delivery_id=delivery_id) is None
    assert len(receiver.requests) == 3


def test_a_pending_delivery_records_each_attempt_and_succeeds_later(
    settings: Any,
    admin_user: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    receiver.status = 503
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    assert services.delivery_attempt(delivery_id=delivery_id) == 2
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.attempts, delivery.status_code) == ("pending", 1, 503)

    receiver.status = 204
    assert services.delivery_attempt(delivery_id=delivery_id) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.status_code) == ("delivered", 2, 204)
    assert delivery.last_error == ""


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(
    settings: Any,
    admin_user: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
    status: int,
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.status = status
    receiver.location = f"{receiver.url}/elsewhere"
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    assert services.delivery_attempt(delivery_id=delivery_id) is not None
    assert services.delivery_attempt(delivery_id=delivery_id) is None

    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.status_code, delivery.attempts) == ("failed", status, 2)
    assert str(status) in delivery.last_error


def test_a_receiver_that_does_not_answer(
    settings: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    subscribe(admin_user, f"http://127.0.0.1:{closed_port()}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    assert services.delivery_attempt(delivery_id=delivery_id) == 2
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.status_code, delivery.attempts) == ("pending", None, 1)
    assert "ConnectionError" in delivery.last_error

    assert services.delivery_attempt(delivery_id=delivery_id) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 2)


def test_a_slow_receiver_times_out(
    settings: Any,
    admin_user: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    began = time.monotonic()
    assert services.delivery_attempt(delivery_id=delivery_id) is not None
    assert time.monotonic() - began < 1.0
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status_code is None
    assert "Timeout" in delivery.last_error


def test_private_address_is_checked_again_at_delivery(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    subscription, _ = subscribe(admin_user, f"{receiver.url}/hook")
    WebhookSubscription.objects.filter(pk=subscription.pk).update(allow_private_addresses=False)
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    services.delivery_attempt(delivery_id=delivery_id)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status_code is None and delivery.attempts == 1
    assert "127.0.0.1" in delivery.last_error and "private" in delivery.last_error


def test_a_dripping_receiver_is_cut_at_the_deadline(
    settings: Any, admin_user: Any, serve: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The receiver sends its status line a byte every half second (30 s in all): each read
    is within the timeout, the whole answer is not."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver = serve(drip(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 50, 0.5))
    subscribe(admin_user, receiver.url("/hook"))
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    began = time.monotonic()
    assert services.delivery_attempt(delivery_id=delivery_id) is not None
    assert time.monotonic() - began < 10

    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.status_code, delivery.attempts) == ("pending", None, 1)
    assert "Timeout" in delivery.last_error
    assert len(receiver.requests) == 1


def test_a_gzip_bomb_answer_is_not_read(
    admin_user: Any, serve: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """256 MiB of zeros as a 256 KiB gzip answer: only the status counts, nothing is read."""
    bomb = gzip_of_zeros(256 << 20)
    receiver = serve(answer(200, bomb, {"Content-Encoding": "gzip"}))
    subscribe(admin_user, receiver.url("/hook"))
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    growth, done = peak_rss_growth(lambda: services.delivery_attempt(delivery_id=delivery_id))

    print(f"webhook gzip bomb: peak RSS growth {growth >> 20} MiB")
    assert done is None
    assert growth < 64 << 20
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.status_code) == ("delivered", 200)


def test_the_delivery_task_has_soft_and_hard_time_limits(
    settings: Any,
    admin_user: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert deliver_webhook.soft_time_limit == settings.WEBHOOK_SOFT_TIME_LIMIT
    assert deliver_webhook.time_limit == settings.WEBHOOK_TIME_LIMIT
    # Defaults leave the POST its whole deadline, and the hard limit comes after the soft one.
    assert settings.WEBHOOK_TIMEOUT_SECONDS < settings.WEBHOOK_SOFT_TIME_LIMIT
    assert settings.WEBHOOK_SOFT_TIME_LIMIT < settings.WEBHOOK_TIME_LIMIT

    # The message carries the sender's limits.
    sent: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(outbox, "send", lambda *message: sent.append(message))
    settings.WEBHOOK_SOFT_TIME_LIMIT, settings.WEBHOOK_TIME_LIMIT = 7, 9
    subscribe(admin_user, "http://127.0.0.1:9/hook")
    with django_capture_on_commit_callbacks(execute=True):
        (delivery_id,) = services.event_publish(event=Event.KPI_STATUS_CHANGED, payload={})
    assert sent == [
        (services.DELIVER_WEBHOOK, (delivery_id,), {"soft_time_limit": 7, "time_limit": 9})
    ]


def test_an_attempt_stopped_at_the_time_limit_is_a_failed_attempt(
    settings: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """What the task records when the soft time limit interrupts an attempt (the real worker
    is in tests/integration/test_webhook_time_limit.py)."""
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    subscribe(admin_user, f"http://127.0.0.1:{closed_port()}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)
    services.delivery_attempt(delivery_id=delivery_id)  # attempt 1: no answer

    assert services.delivery_time_out(delivery_id=delivery_id) == 2  # the same backoff
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "The delivery exceeded its time limit."

    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=2)
    assert services.delivery_time_out(delivery_id=delivery_id) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 2)


def test_attempts_killed_at_the_hard_limit_are_not_sent_again_past_the_maximum(
    settings: Any, admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    """A worker killed at the hard limit records nothing; the message comes back. The
    attempts it counted still stop the delivery."""
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)
    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=2)

    assert services.delivery_attempt(delivery_id=delivery_id) is None

    assert receiver.requests == []
    assert WebhookDelivery.objects.get(pk=delivery_id).state == DeliveryState.FAILED


# Events of the other apps


@pytest.fixture
def all_events(admin_user: Any) -> WebhookSubscription:
    subscription, _ = subscribe(admin_user, "http://127.0.0.1:9/hook", list(Event.values))
    return subscription


def test_a_gate_decision_publishes_initiative_decided(
    ready_initiative: Initiative,
    pm: Any,
    all_events: WebhookSubscription,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decide(ready_initiative, Decision.GO, pm)

    (delivery,) = WebhookDelivery.objects.filter(event=Event.INITIATIVE_DECIDED)
    assert delivery.subscription == all_events
    assert delivery.payload["event"] == "initiative.decided"
    assert delivery.payload["data"] == {
        "initiative": ready_initiative.key,
        "decision": "go",
        "rationale": "go for the test",
        "decided_by": "pm",
        "phase": "dev",
        "status": "active",
        "from_phase": "biz",
        "from_status": "active",
    }
    assert len(callbacks) >= 1


def test_the_decided_event_exists_only_if_the_decision_is_committed(
    ready_initiative: Initiative, pm: Any, all_events: WebhookSubscription
) -> None:
    # Rolled back with the transaction that made the decision.
    with pytest.raises(RuntimeError), transaction.atomic():
        decide(ready_initiative, Decision.GO, pm)
        assert WebhookDelivery.objects.filter(event=Event.INITIATIVE_DECIDED).count() == 1
        raise RuntimeError("roll back")
    assert not WebhookDelivery.objects.exists()
    ready_initiative.refresh_from_db()
    assert ready_initiative.phase == "biz"


def test_a_refused_decision_publishes_nothing(
    initiative: Initiative, pm: Any, all_events: WebhookSubscription
) -> None:
    with pytest.raises(DomainError):
        decide(initiative, Decision.GO, pm)  # the Biz gate does not hold
    assert not WebhookDelivery.objects.exists()


def test_a_handover_publishes_initiative_handed_over(
    initiative: Initiative,
    pm: Any,
    other_pm: Any,
    all_events: WebhookSubscription,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        initiative_services.initiative_hand_over(
            initiative=initiative, to=other_pm, reason="Parental leave", user=pm
        )

    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event == Event.INITIATIVE_HANDED_OVER
    assert delivery.payload["data"] == {
        "initiative": initiative.key,
        "from": "pm",
        "to": "pm2",
        "reason": "Parental leave",
        "by": "pm",
    }
    assert len(callbacks) == 1

    with pytest.raises(RuntimeError), transaction.atomic():
        initiative_services.initiative_hand_over(
            initiative=initiative, to=pm, reason="Back", user=other_pm
        )
        assert WebhookDelivery.objects.count() == 2
        raise RuntimeError("roll back")
    assert WebhookDelivery.objects.count() == 1


def test_deactivating_is_for_admins_and_stops_pending_deliveries(admin_user, pm):
    from django.core.exceptions import PermissionDenied as Forbidden

    from notifications import services as notification_services
    from notifications.models import DeliveryState, Event, WebhookDelivery

    subscription, _ = notification_services.webhook_subscribe(
        user=admin_user,
        url="http://127.0.0.1:9/hook",
        events=[Event.RUN_FAILED.value],
        allow_private_addresses=True,
    )
    with pytest.raises(Forbidden):
        notification_services.webhook_deactivate(subscription=subscription, user=pm)
    subscription.refresh_from_db()
    assert subscription.active
    (delivery_id,) = notification_services.event_publish(event=Event.RUN_FAILED, payload={})
    notification_services.webhook_deactivate(subscription=subscription, user=admin_user)
    assert notification_services.delivery_attempt(delivery_id=delivery_id) is None
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 0)


# A message that comes twice (the outbox sends at least once)


def test_the_next_attempt_waits_in_the_outbox_for_its_backoff(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from bizdevops.models import OutboxMessage

    receiver.status = 503
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)
    OutboxMessage.objects.all().delete()  # the first message was taken by the broker

    before = timezone.now()
    assert services.delivery_attempt(delivery_id=delivery_id) == 2

    (retry,) = OutboxMessage.objects.all()
    assert (retry.task, retry.args) == (services.DELIVER_WEBHOOK, [delivery_id])
    assert before + dt.timedelta(seconds=2) <= retry.available_at
    assert retry.available_at <= timezone.now() + dt.timedelta(seconds=2)


def test_a_second_message_during_an_attempt_is_postponed_not_posted(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from bizdevops.models import OutboxMessage

    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)
    OutboxMessage.objects.all().delete()
    # Another worker took the first message and is POSTing right now.
    in_flight_until = timezone.now() + dt.timedelta(seconds=30)
    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=1, claimed_until=in_flight_until)

    assert services.delivery_attempt(delivery_id=delivery_id) is None

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    # Looked at again once the other attempt must be over (its hard time limit).
    (later,) = OutboxMessage.objects.all()
    assert later.args == [delivery_id]
    assert abs((later.available_at - in_flight_until).total_seconds()) < 1


def test_a_delivered_delivery_is_not_posted_again_by_a_second_message(
    admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)

    assert services.delivery_attempt(delivery_id=delivery_id) is None
    assert services.delivery_attempt(delivery_id=delivery_id) is None

    assert len(receiver.requests) == 1
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.state, delivery.attempts, delivery.claimed_until) == (
        DeliveryState.DELIVERED,
        1,
        None,
    )


# A message that the broker lost (Redis restarted without its data)


def test_a_pending_delivery_whose_message_was_lost_is_sent_again(
    settings: Any, admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from bizdevops.models import OutboxMessage

    subscribe(admin_user, f"{receiver.url}/hook")
    (delivery_id,), _ = publish(django_capture_on_commit_callbacks)
    OutboxMessage.objects.all().delete()  # taken by the broker, which then lost it
    later = timezone.now() + dt.timedelta(seconds=settings.WEBHOOK_TIME_LIMIT + 1)

    assert services.deliveries_reap(waiting=0, now=later) == [delivery_id]

    (again,) = OutboxMessage.objects.all()
    assert (again.task, again.args) == (services.DELIVER_WEBHOOK, [delivery_id])
    # Its message is in the outbox now: the next reap leaves it alone.
    assert services.deliveries_reap(waiting=0, now=later) == []


def test_deliveries_that_are_only_waiting_are_not_sent_again(
    settings: Any, admin_user: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from bizdevops.models import OutboxMessage

    subscribe(admin_user, f"{receiver.url}/hook")
    ids, _ = publish(django_capture_on_commit_callbacks)
    (delivery_id,) = ids
    later = timezone.now() + dt.timedelta(seconds=settings.WEBHOOK_TIME_LIMIT + 1)

    assert services.deliveries_reap(waiting=0, now=later) == []  # still in the outbox
    OutboxMessage.objects.all().delete()
    assert services.deliveries_reap(waiting=3, now=later) == []  # maybe in the queue
    assert services.deliveries_reap(waiting=None, now=later) == []  # the broker cannot tell
    assert services.deliveries_reap(waiting=0) == []  # too recent to be lost
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        claimed_until=later + dt.timedelta(seconds=5)
    )
    assert services.deliveries_reap(waiting=0, now=later) == []  # an attempt in flight
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        claimed_until=None, state=DeliveryState.DELIVERED
    )
    assert services.deliveries_reap(waiting=0, now=later) == []  # done
