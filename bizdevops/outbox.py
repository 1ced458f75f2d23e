"""The transactional outbox: how services hand work to the Celery workers.

`enqueue` writes the task as a row (OutboxMessage) in the transaction of the change that
causes it, so the work exists exactly when the change does. Right after that transaction
commits, the rows it wrote are published and deleted (`relay`); when the broker does not
answer, they stay, nothing fails for the caller, and the periodic sweep (the `control`
queue's `bizdevops.tasks.outbox_relay`, every OUTBOX_SWEEP_INTERVAL_SECONDS) sends them with
a backoff once it does. A row is deleted only after the broker took its message, so a crash
in between sends it twice: every consumer is idempotent (docs/reliability.md says how).

Services never import their tasks (the tasks import the services), so tasks are named by
string; tests replace `send` to see what would leave.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from bizdevops.celery import app
from bizdevops.models import OutboxMessage

log = logging.getLogger(__name__)

BATCH = 500
BACKOFF_MAX_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 2
# Ids written on this connection whose transaction has not been relayed yet.
_PENDING = "_bizdevops_outbox_pending"


def enqueue(name: str, *args: Any, delay: float = 0, **options: Any) -> OutboxMessage:
    """Write task `name` with `args` (and Celery options such as `time_limit`) to the outbox
    in the current transaction; it is sent once that commits (at once when none is open),
    and never for a rolled-back change. With `delay`, not before that many seconds."""
    return enqueue_many(name, [(args, options)], delay=delay)[0]


def enqueue_many(
    name: str, messages: list[tuple[tuple[Any, ...], dict[str, Any]]], *, delay: float = 0
) -> list[OutboxMessage]:
    """`enqueue` for many messages of one task, `(args, options)` each, in one INSERT."""
    now = timezone.now()
    available = now + dt.timedelta(seconds=delay)
    rows = OutboxMessage.objects.bulk_create(
        OutboxMessage(
            task=name, args=list(args), options=options, created_at=now, available_at=available
        )
        for args, options in messages
    )
    if delay <= 0:
        connection = transaction.get_connection()
        pending: list[int] = getattr(connection, _PENDING, None) or []
        setattr(connection, _PENDING, pending)
        for row in rows:
            pending.append(row.pk)
            # One callback per message keeps on_commit's own bookkeeping (a savepoint rolled
            # back drops its callbacks); the first one to run relays every id written so far.
            transaction.on_commit(_relay_pending, robust=True)
    return rows


def _relay_pending() -> None:
    connection = transaction.get_connection()
    pending: list[int] = getattr(connection, _PENDING, None) or []
    if not pending:
        return
    ids, pending[:] = list(pending), []
    try:
        relay(ids=ids)
    except Exception:
        # The database went away after the commit: the sweep sends them.
        log.warning("Outbox: could not relay %d messages after commit", len(ids), exc_info=True)


def send(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Publish one message. Fails within CONNECT_TIMEOUT_SECONDS when the broker does not
    answer: kombu would otherwise keep reconnecting for the whole connection timeout (6 s
    measured per message with Redis refusing connections)."""
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT_SECONDS)
        app.send_task(name, args=list(args), retry=False, producer=producer, **options)


def backoff(failures: int) -> int:
    return int(min(2 ** max(failures - 1, 0), BACKOFF_MAX_SECONDS))


def relay(*, ids: list[int] | None = None, limit: int = BATCH) -> int:
    """Send due messages (those of `ids`, or the oldest `limit`), delete the sent ones, and
    back off the rest when the broker fails. Returns how many were sent. Rows locked by
    another relay are skipped (PostgreSQL), so two relays do not send the same row."""
    now = timezone.now()
    sent = 0
    for start in range(0, len(ids), limit) if ids is not None else [0]:
        chunk = ids[start : start + limit] if ids is not None else None
        with transaction.atomic():
            due = OutboxMessage.objects.select_for_update(skip_locked=True).filter(
                available_at__lte=now
            )
            if chunk is not None:
                due = due.filter(pk__in=chunk)
            rows = list(due.order_by("available_at", "id")[:limit])
            done, error = _publish(rows)
            OutboxMessage.objects.filter(pk__in=done).delete()
            if error is not None:
                _back_off(rows[len(done) :], error, now)
        sent += len(done)
        if error is not None:
            break
    return sent


def send_now(ids: list[int]) -> int:
    """Send these messages now, whatever their backoff or delay (the admin's action)."""
    OutboxMessage.objects.filter(pk__in=ids).update(available_at=timezone.now())
    return relay(ids=ids)


def _publish(rows: list[OutboxMessage]) -> tuple[list[int], Exception | None]:
    done: list[int] = []
    for row in rows:
        try:
            send(row.task, tuple(row.args), row.options)
        except Exception as error:  # the broker's errors have no common base class
            return done, error
        done.append(row.pk)
    return done, None


def _back_off(rows: list[OutboxMessage], error: Exception, now: dt.datetime) -> None:
    text = f"{type(error).__name__}: {error}"[:500]
    for row in rows:
        row.send_failures += 1
        row.available_at = now + dt.timedelta(seconds=backoff(row.send_failures))
        row.last_error = text
    OutboxMessage.objects.bulk_update(rows, ["send_failures", "available_at", "last_error"])
    log.warning("Outbox: the broker refused %d messages (%s); retrying later", len(rows), text)


def sweep(*, limit: int = BATCH, rounds: int = 20) -> int:
    """The periodic relay: send what is due, `limit` rows at a time, until nothing is left or
    the broker fails (at most `rounds` batches, so one sweep stays short)."""
    total = 0
    for _ in range(rounds):
        sent = relay(limit=limit)
        total += sent
        if sent < limit:
            break
    return total


def oldest_pending() -> dict[str, Any]:
    """How many messages wait, how many are due, and the age in seconds of the oldest."""
    now = timezone.now()
    stats = OutboxMessage.objects.aggregate(
        oldest=Min("created_at"),
        due=Count("id", filter=Q(available_at__lte=now)),
        pending=Count("id"),
    )
    oldest = stats["oldest"]
    return {
        "pending": stats["pending"],
        "due": stats["due"],
        "oldest_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


def pending_args(task: str) -> set[Any]:
    """The first argument of every message of `task` still in the outbox (normally none)."""
    return {
        args[0]
        for args in OutboxMessage.objects.filter(task=task).values_list("args", flat=True)
        if args
    }


def broker_waiting(queue: str) -> int | None:
    """How many messages wait in `queue` on the broker (declaring it, as the workers do, is
    harmless); None when it cannot tell (the broker is away)."""
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT_SECONDS)
            with connection.channel() as channel:
                return int(channel.queue_declare(queue=queue).message_count)
    except Exception:
        return None
