"""A decision says which phase its decider saw (`from_phase`): when someone decided
meanwhile, it is refused as stale instead of being applied to a phase nobody looked at. Found
by the fault tests: two program managers saying "recycle" at once (or one resending the
request) took an initiative from Ops back to Biz, losing the Biz gate's sign-offs."""

from __future__ import annotations

from typing import Any

import pytest

from bizdevops.errors import ConflictError
from initiatives.models import Initiative, Phase
from phases import services
from phases.models import Decision, GateDecision
from tests.api.helpers import API, authenticate

pytestmark = pytest.mark.django_db


def test_a_decision_on_a_phase_the_initiative_has_left_is_refused_as_stale(
    ops_initiative: Initiative, pm: Any
):
    services.gate_decide(
        initiative=ops_initiative,
        decision=Decision.RECYCLE,
        rationale="The model drifted.",
        user=pm,
        from_phase=Phase.OPS,
    )
    before = GateDecision.objects.count()

    with pytest.raises(ConflictError) as refused:
        services.gate_decide(
            initiative=ops_initiative,
            decision=Decision.RECYCLE,
            rationale="The model drifted.",
            user=pm,
            from_phase=Phase.OPS,
        )

    assert refused.value.code == "stale"
    assert "is in Dev now, not Ops" in refused.value.message
    assert GateDecision.objects.count() == before
    ops_initiative.refresh_from_db()
    assert ops_initiative.phase == Phase.DEV


def test_without_from_phase_the_decision_is_judged_on_the_current_phase(
    ops_initiative: Initiative, pm: Any
):
    for _ in range(2):
        services.gate_decide(
            initiative=ops_initiative, decision=Decision.RECYCLE, rationale="Again.", user=pm
        )
    ops_initiative.refresh_from_db()
    assert ops_initiative.phase == Phase.BIZ  # two decisions, as asked


def test_the_api_answers_409_stale(ops_initiative: Initiative, pm: Any):
    from rest_framework.test import APIClient

    client = authenticate(APIClient(), pm)
    url = f"{API}/initiatives/{ops_initiative.key}/decisions/"
    body = {"decision": "recycle", "rationale": "Drift.", "from_phase": "ops"}

    assert client.post(url, body, format="json").status_code == 201
    again = client.post(url, body, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "stale"
    assert client.post(url, body | {"from_phase": "nowhere"}, format="json").status_code == 400


def test_the_decision_form_sends_the_phase_it_shows_and_shows_a_stale_refusal(
    client: Any, ops_initiative: Initiative, pm: Any
):
    client.force_login(pm)
    page = client.get(f"/initiatives/{ops_initiative.key}/").content.decode()
    assert '<input type="hidden" name="from_phase" value="ops">' in page
    url = f"/initiatives/{ops_initiative.key}/decisions/"
    form = {"decision": "recycle", "rationale": "Drift.", "from_phase": "ops"}
    client.post(url, form)

    answer = client.post(url, form)

    assert answer.status_code == 409
    assert "someone decided meanwhile" in answer.content.decode()
    ops_initiative.refresh_from_db()
    assert ops_initiative.phase == Phase.DEV
