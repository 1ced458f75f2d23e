from __future__ import annotations

from phases.models import Decision
from phases.rules import checklist, gate_out_of, unmet
from tests.factories import decide, pass_dev_gate


def test_full_flow(ready_initiative, pm, stakeholder):
    assert unmet(checklist(ready_initiative, gate_out_of("biz"))) == []
    initiative = decide(ready_initiative, Decision.GO, pm)
    assert initiative.phase == "dev"
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder)
    initiative = decide(initiative, Decision.GO, pm)
    assert initiative.phase == "ops"
