"""Two decisions on one initiative at the same moment: the row lock makes the second one wait
for the first and then judge the state the first one left. Needs PostgreSQL (two real
connections; SQLite serialises whole-database writes instead)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, connections

from bizdevops.errors import ConflictError
from initiatives.models import Status
from phases.models import GateDecision
from phases.services import gate_decide

# serialized_rollback: the rows data migrations made (roles, gates) are put back before the
# test, whatever transactional test flushed the database before it.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _sessions_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def test_two_concurrent_decisions_cannot_both_apply(initiative, pm):
    from django.db import transaction

    first_applied = threading.Event()
    release_first = threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                gate_decide(initiative=initiative, decision="hold", rationale="First", user=pm)
                first_applied.set()
                # Keep the transaction (and its row lock) open until the second one waits.
                release_first.wait(timeout=20)
            outcome["first"] = "applied"
        except Exception as error:  # reported to the test thread below
            outcome["first"] = error
        finally:
            connections.close_all()

    def second() -> None:
        first_applied.wait(timeout=20)
        try:
            gate_decide(initiative=initiative, decision="hold", rationale="Second", user=pm)
            outcome["second"] = "applied"
        except Exception as error:
            outcome["second"] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_applied.wait(timeout=20), "the first decision never applied"
    deadline = time.monotonic() + 20
    while _sessions_waiting_for_a_lock() < 1:
        assert time.monotonic() < deadline, "the second decision never waited for the lock"
        time.sleep(0.05)
    release_first.set()
    for thread in threads:
        thread.join(timeout=30)

    assert outcome["first"] == "applied"
    assert isinstance(outcome["second"], ConflictError), outcome["second"]
    assert "needs status active" in outcome["second"].message
    initiative.refresh_from_db()
    assert initiative.status == Status.ON_HOLD
    assert list(GateDecision.objects.values_list("rationale", flat=True)) == ["First"]
