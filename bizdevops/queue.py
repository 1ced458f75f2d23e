"""How services hand work to the Celery workers: by task name, after the transaction that
caused the work commits. Services never import their tasks (the tasks import the services),
so there is no cycle between them; tests replace `send` to see what would leave."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from bizdevops.celery import app


def enqueue(name: str, *args: Any, **options: Any) -> None:
    """Send task `name` with `args` (and Celery options such as `time_limit`) once the current
    transaction commits, at once when none is open. Nothing is sent for a rolled-back change."""
    transaction.on_commit(partial(send, name, args, options))


def send(name: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
    app.send_task(name, args=list(args), **options)
