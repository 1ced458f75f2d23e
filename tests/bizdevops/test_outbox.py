"""The transactional outbox (bizdevops/outbox.py): a message exists exactly when the change
that caused it was committed, is sent right after the commit when the broker answers, stays
(with a backoff) when it does not, and the sweep sends it later. Transactional tests: the
relay after commit is what they check, so the commits must happen."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from bizdevops import outbox
from bizdevops.models import OutboxMessage

COMMITTED = pytest.mark.django_db(transaction=True, serialized_rollback=True)
TASK = "tests.outbox.task"


class Broker:
    """`outbox.send` replaced: records what was published, or refuses like a broker that is
    away (kombu's OperationalError, as measured with Redis refusing connections)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.down = False
        self.refuse_after: int | None = None

    def __call__(self, name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        if self.down or (self.refuse_after is not None and len(self.sent) >= self.refuse_after):
            raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.append((name, args))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker()
    monkeypatch.setattr(outbox, "send", fake)
    return fake


def pending() -> list[tuple[str, list[Any]]]:
    return list(OutboxMessage.objects.order_by("id").values_list("task", "args"))


@COMMITTED
def test_a_message_is_written_with_its_change_and_sent_after_the_commit(broker: Broker):
    with transaction.atomic():
        outbox.enqueue(TASK, 1, time_limit=9)
        assert pending() == [(TASK, [1])]  # a row in the transaction ...
        assert broker.sent == []  # ... and nothing published before the commit

    assert broker.sent == [(TASK, (1,))]
    assert pending() == []  # deleted once the broker took it


@COMMITTED
def test_a_rolled_back_change_leaves_no_message(broker: Broker):
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.enqueue(TASK, 1)
        raise RuntimeError("the change fails")

    assert pending() == []
    outbox.enqueue(TASK, 2)  # the next commit sends only what exists
    assert broker.sent == [(TASK, (2,))]


@COMMITTED
def test_a_savepoint_rolled_back_drops_only_its_message(broker: Broker):
    with transaction.atomic():
        outbox.enqueue(TASK, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            outbox.enqueue(TASK, 2)
            raise RuntimeError("an inner step fails")
        outbox.enqueue(TASK, 3)

    assert broker.sent == [(TASK, (1,)), (TASK, (3,))]
    assert pending() == []


@COMMITTED
def test_the_broker_down_at_commit_fails_nothing_and_keeps_the_message(broker: Broker):
    broker.down = True
    before = timezone.now()

    with transaction.atomic():
        outbox.enqueue(TASK, 1)
    # No exception reached the caller: the change is committed, the message waits.

    message = OutboxMessage.objects.get()
    assert (message.task, message.args, message.send_failures) == (TASK, [1], 1)
    assert "Connection refused" in message.last_error
    assert message.available_at >= before + dt.timedelta(seconds=outbox.backoff(1))


@COMMITTED
def test_a_real_unreachable_broker_is_given_up_on_within_seconds(unreachable_broker: None):
    started = time.monotonic()

    with transaction.atomic():
        outbox.enqueue(TASK, 1)

    # kombu alone keeps reconnecting for the connection timeout (6 s measured per message).
    assert time.monotonic() - started < outbox.CONNECT_TIMEOUT_SECONDS + 1
    message = OutboxMessage.objects.get()
    assert message.send_failures == 1
    assert message.last_error.startswith("OperationalError")


@COMMITTED
def test_the_sweep_sends_what_is_due_oldest_first_and_leaves_delayed_messages(broker: Broker):
    broker.down = True
    outbox.enqueue(TASK, 1)
    outbox.enqueue(TASK, 2)
    outbox.enqueue(TASK, 3, delay=3600)  # a retry due in an hour
    OutboxMessage.objects.update(available_at=timezone.now() - dt.timedelta(seconds=1))
    OutboxMessage.objects.filter(args=[3]).update(
        available_at=timezone.now() + dt.timedelta(hours=1)
    )
    broker.down = False

    assert outbox.sweep() == 2

    assert broker.sent == [(TASK, (1,)), (TASK, (2,))]
    assert pending() == [(TASK, [3])]


@COMMITTED
def test_a_delayed_message_is_not_sent_after_commit_but_by_the_sweep_once_due(broker: Broker):
    with transaction.atomic():
        outbox.enqueue(TASK, 1, delay=2)
    assert broker.sent == []

    assert outbox.sweep() == 0
    OutboxMessage.objects.update(available_at=timezone.now())
    assert outbox.sweep() == 1
    assert broker.sent == [(TASK, (1,))]


@COMMITTED
def test_the_relay_stops_at_the_first_refusal_and_backs_off_the_rest(broker: Broker):
    broker.down = True
    for number in range(4):
        outbox.enqueue(TASK, number)
    OutboxMessage.objects.update(available_at=timezone.now())
    broker.down, broker.refuse_after = False, 1

    assert outbox.sweep() == 1

    assert broker.sent == [(TASK, (0,))]
    left = OutboxMessage.objects.order_by("id")
    assert [message.args for message in left] == [[1], [2], [3]]
    assert [message.send_failures for message in left] == [2, 2, 2]
    assert all(message.available_at > timezone.now() for message in left)


def test_the_backoff_doubles_and_is_capped():
    assert [outbox.backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@COMMITTED
@pytest.mark.postgres
def test_a_message_another_relay_holds_is_skipped_not_sent_twice(broker: Broker):
    broker.down = True
    outbox.enqueue(TASK, 1)
    outbox.enqueue(TASK, 2)
    OutboxMessage.objects.update(available_at=timezone.now())
    broker.down = False
    first = OutboxMessage.objects.order_by("id").first()
    assert first is not None
    locked, release = threading.Event(), threading.Event()

    def other_relay() -> None:
        # Another process's relay, in the middle of sending message 1.
        try:
            with transaction.atomic():
                OutboxMessage.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    try:
        assert locked.wait(10)
        assert outbox.sweep() == 1
        assert broker.sent == [(TASK, (2,))]
    finally:
        release.set()
        thread.join(10)


@COMMITTED
def test_healthz_reports_the_pending_messages_and_the_age_of_the_oldest(broker: Broker):
    broker.down = True
    outbox.enqueue(TASK, 1)
    outbox.enqueue(TASK, 2, delay=600)
    OutboxMessage.objects.filter(args=[1]).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )

    body = Client().get("/healthz").json()

    assert body["outbox"]["pending"] == 2
    assert body["outbox"]["due"] == 0  # both backed off or delayed
    assert 299 <= body["outbox"]["oldest_seconds"] <= 320


@COMMITTED
def test_the_admin_lists_pending_messages_with_their_age_and_sends_them(
    broker: Broker, admin_user: Any
):
    broker.down = True
    outbox.enqueue("jobs.tasks.execute_run", 41)
    OutboxMessage.objects.update(created_at=timezone.now() - dt.timedelta(minutes=3))
    client = Client()
    client.force_login(admin_user)

    page = client.get("/admin/bizdevops/outboxmessage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "jobs.tasks.execute_run" in html
    assert "3\xa0minutes" in html
    assert "Connection refused" in html

    broker.down = False
    message = OutboxMessage.objects.get()
    answer = client.post(
        "/admin/bizdevops/outboxmessage/",
        {"action": "send_now", "_selected_action": [message.pk]},
        follow=True,
    )
    assert "Sent 1 of 1 messages." in answer.content.decode()
    assert broker.sent == [("jobs.tasks.execute_run", (41,))]
    assert pending() == []
