"""Fault: two program managers (the accountable one and an admin who is one too) decide on
the same initiative at the same moment, through the REST API of a live server (two requests,
two server threads, two database connections), with a worker delivering the webhooks.

tests/phases/test_concurrency.py proves the row lock in the service (a held lock makes the
second `gate_decide` wait and then judge the state the first left); this is the same race end
to end: HTTP, the API's error for the loser, and the webhooks that leave.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from rest_framework.authtoken.models import Token

from bizdevops.roles import Role
from initiatives.models import Initiative, Phase, Status
from notifications import services as notification_services
from notifications.models import DeliveryState, Event, WebhookDelivery
from phases.models import Decision, GateDecision
from tests.factories import pass_dev_gate
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.servers import LocalServer, answer

pytestmark = INTEGRATION

ROUNDS = 4


@pytest.fixture
def receiver() -> Any:
    server = LocalServer(answer(200, b"{}"))
    yield server
    server.close()


@pytest.fixture
def admin_pm(make_user: Any) -> Any:
    return make_user(Role.PROGRAM_MANAGER, username="pm-admin", is_superuser=True, is_staff=True)


def post_decision(
    base_url: str, user: Any, token: str, key: str, decision: str, from_phase: str = ""
) -> tuple[int, dict[str, Any]]:
    body = {"decision": decision, "rationale": f"{user.username}: {decision}"}
    if from_phase:
        body["from_phase"] = from_phase  # the phase the client saw, as the page sends it
    request = urllib.request.Request(  # noqa: S310  (the live server: http://localhost)
        f"{base_url}/api/v1/initiatives/{key}/decisions/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def at_once(
    base_url: str, key: str, calls: list[tuple[Any, str]], from_phase: str = ""
) -> list[tuple[int, Any]]:
    """POST the decisions from one thread each, released together (the threads do not touch
    the database: their connections would outlive the test)."""
    tokens = [Token.objects.get_or_create(user=user)[0].key for user, _ in calls]
    start = threading.Barrier(len(calls), timeout=20)
    answers: list[tuple[int, Any]] = [(0, None)] * len(calls)

    def call(index: int, user: Any, decision: str) -> None:
        start.wait()
        try:
            answers[index] = post_decision(base_url, user, tokens[index], key, decision, from_phase)
        except BaseException as error:  # reported in the test's thread
            answers[index] = (-1, repr(error))

    threads = [
        threading.Thread(target=call, args=(i, user, decision))
        for i, (user, decision) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hangs"
    return answers


def decisions_on(initiative: Initiative, since_id: int) -> list[tuple[str, str, str]]:
    return list(
        GateDecision.objects.filter(initiative=initiative, pk__gt=since_id)
        .order_by("pk")
        .values_list("decision", "decided_by__username", "to_phase")
    )


def last_decision_id() -> int:
    return GateDecision.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def subscribed_worker(
    admin_pm: Any, receiver: LocalServer, start_worker: Any, settings: Any
) -> Worker:
    notification_services.webhook_subscribe(
        user=admin_pm,
        url=receiver.url("/hook"),
        events=[Event.INITIATIVE_DECIDED],
        allow_private_addresses=True,
    )
    return start_worker(DATA_SOURCE_KEY=settings.DATA_SOURCE_KEY)


def test_two_program_managers_saying_go_at_once_record_one_decision(
    portfolio: Portfolio,
    admin_pm: Any,
    live_server: Any,
    receiver: LocalServer,
    start_worker: Any,
    settings: Any,
):
    initiatives = []
    for n in range(ROUNDS):
        initiative = portfolio.initiative(f"Round {n}", phase=Phase.DEV)
        pass_dev_gate(
            initiative,
            pm=portfolio.pm,
            stakeholder=portfolio.stakeholder,
            engineer=portfolio.engineer,
        )
        initiatives.append(initiative)
    subscribed_worker(admin_pm, receiver, start_worker, settings)
    before = last_decision_id()

    outcomes = []
    for initiative in initiatives:
        answers = at_once(live_server.url, initiative.key, [(portfolio.pm, "go"), (admin_pm, "go")])
        outcomes.append(sorted(status for status, _ in answers))
        assert sorted(status for status, _ in answers) == [201, 409], answers
        (refusal,) = [body for status, body in answers if status == 409]
        assert refusal["error"]["code"] == "not_allowed", refusal
        assert refusal["error"]["message"] == "'Go' is not a decision for an initiative in Ops."
        (applied,) = decisions_on(initiative, before)
        assert applied[0] == Decision.GO and applied[2] == Phase.OPS
        initiative.refresh_from_db()
        assert (initiative.phase, initiative.status) == (Phase.OPS, Status.ACTIVE)

    wait_for(
        lambda: WebhookDelivery.objects.filter(state=DeliveryState.DELIVERED).count() >= ROUNDS,
        "the webhooks of the decisions",
        describe=lambda: list(WebhookDelivery.objects.values_list("state", "attempts")),
    )
    received = [r.headers.get("x-bizdevops-delivery") for r in receiver.requests]
    got = {
        "decisions recorded": GateDecision.objects.filter(pk__gt=before).count(),
        "requests refused with 409": sum(outcome.count(409) for outcome in outcomes),
        "webhook deliveries": WebhookDelivery.objects.count(),
        "webhook POSTs received": len(received),
        "webhook deliveries received more than once": len(received) - len(set(received)),
    }
    expected = {
        "decisions recorded": ROUNDS,
        "requests refused with 409": ROUNDS,
        "webhook deliveries": ROUNDS,
        "webhook POSTs received": ROUNDS,
        "webhook deliveries received more than once": 0,
    }
    print(f"\nexpected {expected}\ngot      {got}")
    assert got == expected


def test_two_program_managers_saying_recycle_at_once_move_it_back_one_phase(
    portfolio: Portfolio, admin_pm: Any, live_server: Any
):
    initiative = portfolio.initiative("Fraud scoring")
    before = last_decision_id()

    # Both saw it in Ops (the decision form and API send `from_phase`): without it, the
    # second "recycle" was judged against Dev, where the first left it, and sent it to Biz.
    answers = at_once(
        live_server.url,
        initiative.key,
        [(portfolio.pm, "recycle"), (admin_pm, "recycle")],
        from_phase=Phase.OPS,
    )

    initiative.refresh_from_db()
    print(f"\nanswers {[s for s, _ in answers]}, now in {initiative.phase}")
    print(f"decisions {decisions_on(initiative, before)}")
    assert len(decisions_on(initiative, before)) == 1
    assert sorted(status for status, _ in answers) == [201, 409], answers
    (refusal,) = [body for status, body in answers if status == 409]
    assert refusal["error"]["code"] == "stale", refusal
    assert "someone decided meanwhile" in refusal["error"]["message"]
    assert initiative.phase == Phase.DEV  # one phase back (Ops → Dev), not two
