"""The transactional outbox (bizdevops/outbox.py): a message exists exactly when the change
that caused it was committed, is sent right after the commit when the broker answers, stays
(with a backoff) when it does not, and the sweep sends it later. Transactional tests: the
relay after commit is what they check, so the commits must happen."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from kombu import Connection
from kombu.exceptions import OperationalError as BrokerError

from bizdevops import outbox
from bizdevops.celery import app
from bizdevops.models import OutboxMessage
from tests.integration.faults import RedisServer
from tests.integration.helpers import redis_url_for_tests

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


# One producer per relay, its messages pipelined (#12). Real Redis: the tests' own database of
# the REDIS_URL server (BIZDEVOPS_TEST_REDIS_DB), or a redis-server of the test's own.

QUEUE = "runs"  # where an unrouted task goes (CELERY_TASK_DEFAULT_QUEUE)


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """This process's Celery app publishing to `url`, and back afterwards."""

    def forget_pools() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    before = app.conf.broker_url
    app.conf.broker_url, app.conf.broker_write_url = url, None
    forget_pools()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = before, None
        forget_pools()


@pytest.fixture
def real_broker() -> Iterator[redis.Redis]:
    url = redis_url_for_tests(os.environ["REDIS_URL"])
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    client.flushdb()
    try:
        with publishing_to(url):
            yield client
    finally:
        client.flushdb()
        client.close()


class Counted:
    """How often the relay acquired a producer and checked a broker connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.producers = 0
        self.connection_checks = 0
        pool = app.producer_pool  # of the broker the test publishes to
        acquire, ensure = pool.acquire, Connection.ensure_connection

        def counting_acquire(*args: Any, **kwargs: Any) -> Any:
            self.producers += 1
            return acquire(*args, **kwargs)

        def counting_ensure(connection: Connection, *args: Any, **kwargs: Any) -> Any:
            self.connection_checks += 1
            return ensure(connection, *args, **kwargs)

        monkeypatch.setattr(pool, "acquire", counting_acquire)
        monkeypatch.setattr(Connection, "ensure_connection", counting_ensure)


def arrived(client: redis.Redis) -> list[tuple[str, list[Any]]]:
    """The (task, args) of the messages waiting in the queue, oldest first (LPUSH'ed; the
    workers take from the other end)."""
    messages = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


@COMMITTED
@pytest.mark.redis
def test_a_relay_publishes_its_batch_through_one_producer_and_one_connection_check(
    real_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
):
    counted = Counted(monkeypatch)

    with transaction.atomic():
        outbox.enqueue_many(TASK, [((n,), {"time_limit": 60}) for n in range(50)])

    # Before #12: 50 producers acquired and 50 connection checks.
    assert (counted.producers, counted.connection_checks) == (1, 1)
    assert arrived(real_broker) == [(TASK, [n]) for n in range(50)]
    assert pending() == []


@COMMITTED
@pytest.mark.redis
def test_a_batch_longer_than_the_pipeline_is_written_in_several_round_trips_all_in_order(
    real_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(outbox, "PIPELINE", 7)
    outbox.enqueue_many(TASK, [((n,), {}) for n in range(30)], delay=3600)
    OutboxMessage.objects.update(available_at=timezone.now())
    counted = Counted(monkeypatch)

    assert outbox.sweep(limit=12) == 30  # three relays of one sweep, sharing the producer

    assert (counted.producers, counted.connection_checks) == (1, 1)
    assert arrived(real_broker) == [(TASK, [n]) for n in range(30)]
    assert pending() == []


@COMMITTED
@pytest.mark.redis
def test_redis_going_away_in_the_middle_of_a_batch_loses_no_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    server = RedisServer(tmp_path / "redis")
    server.start()
    real_send = outbox.send

    def send_then_stop_redis(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        real_send(name, args, options)
        if args == (9,):
            server.stop()  # the first ten are buffered in the pipeline, not written yet

    try:
        with publishing_to(server.url):
            monkeypatch.setattr(outbox, "send", send_then_stop_redis)
            with transaction.atomic():
                outbox.enqueue_many(TASK, [((n,), {}) for n in range(20)])

            # The pipeline could not be written: every row stays, backed off, nothing raised.
            left = list(OutboxMessage.objects.order_by("id"))
            assert [message.args for message in left] == [[n] for n in range(20)]
            assert {message.send_failures for message in left} == {1}

            server.start()  # empty: nothing of the failed batch got there
            monkeypatch.setattr(outbox, "send", real_send)
            OutboxMessage.objects.update(available_at=timezone.now())
            assert outbox.sweep() == 20
            assert arrived(server.client()) == [(TASK, [n]) for n in range(20)]
            assert pending() == []
    finally:
        server.stop()


def decoded(client: redis.Redis) -> list[dict[str, Any]]:
    """The messages waiting in the queue, oldest first, their body decoded."""
    messages = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):
        message = json.loads(raw)
        message["body"] = json.loads(base64.b64decode(message["body"]))
        messages.append(message)
    return messages


def but_its_own(message: dict[str, Any]) -> dict[str, Any]:
    """A message without what is its own: its task id, arguments and delivery tag."""
    headers = {
        key: value
        for key, value in message["headers"].items()
        if key not in ("id", "root_id", "argsrepr")
    }
    properties = {
        key: value
        for key, value in message["properties"].items()
        if key not in ("correlation_id", "delivery_tag")
    }
    return {**message, "headers": headers, "properties": properties, "body": message["body"][1:]}


@COMMITTED
@pytest.mark.redis
def test_the_messages_after_the_first_are_celerys_own_but_for_their_id_and_arguments(
    real_broker: redis.Redis,
):
    short, long = (
        {"soft_time_limit": 40, "time_limit": 60},
        {"soft_time_limit": 70, "time_limit": 90},
    )
    with transaction.atomic():
        outbox.enqueue_many(TASK, [((n, "x"), short if n % 2 else long) for n in range(6)])
    # Celery's own messages, for comparison.
    app.send_task(TASK, args=[98, "x"], **long)
    app.send_task(TASK, args=[99, "x"], **short)

    *ours, celery_long, celery_short = decoded(real_broker)

    assert [message["body"][0] for message in ours] == [[n, "x"] for n in range(6)]
    for n, message in enumerate(ours):
        headers = message["headers"]
        assert headers["root_id"] == headers["id"] == message["properties"]["correlation_id"]
        assert headers["argsrepr"] == repr([n, "x"])
        assert but_its_own(message) == but_its_own(celery_short if n % 2 else celery_long)
    assert len({message["headers"]["id"] for message in ours}) == 6


@COMMITTED
@pytest.mark.redis
def test_messages_whose_options_depend_on_the_moment_are_each_built_by_celery(
    real_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
):
    built: list[list[Any]] = []
    send_task = app.send_task

    def counting_send_task(name: str, args: list[Any], **options: Any) -> Any:
        built.append(args)
        return send_task(name, args=args, **options)

    monkeypatch.setattr(app, "send_task", counting_send_task)

    with transaction.atomic():
        outbox.enqueue_many(TASK, [((n,), {"expires": 600}) for n in range(3)])

    assert built == [[0], [1], [2]]  # the expiry is counted from each one's sending
    assert [message["body"][0] for message in decoded(real_broker)] == [[0], [1], [2]]
    assert all(message["headers"]["expires"] for message in decoded(real_broker))
