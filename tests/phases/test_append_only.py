from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from initiatives.models import Handover
from initiatives.services import initiative_hand_over
from phases.models import GateDecision
from phases.services import gate_decide

pytestmark = pytest.mark.postgres


def test_database_refuses_to_rewrite_decisions(initiative, pm):
    record = gate_decide(initiative=initiative, decision="hold", rationale="Wait", user=pm)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        GateDecision.objects.filter(pk=record.pk).update(rationale="Rewritten")
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM phases_gatedecision WHERE id = %s", [record.pk])
    record.refresh_from_db()
    assert record.rationale == "Wait"


def test_database_refuses_to_rewrite_handovers(initiative, pm, other_pm):
    handover = initiative_hand_over(initiative=initiative, to=other_pm, reason="Leave", user=pm)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).update(reason="Rewritten")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Handover.objects.filter(pk=handover.pk).delete()
    assert Handover.objects.get(pk=handover.pk).reason == "Leave"
