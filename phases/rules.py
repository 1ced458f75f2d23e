"""The phase rules: which decision is allowed where, and what a gate still needs.

The table and the functions below are the only place these rules live; the service that
records decisions, the gate panel and the API all call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bizdevops.errors import ConflictError
from initiatives.models import FINAL_STATUSES, Initiative, Phase, Status
from phases.checks import run_check
from phases.models import Criterion, CriterionKind, Decision, Gate, Tick, TickPolicy


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[Status]
    to_status: Status
    to_phase: Phase | None = None  # None keeps the phase
    gated: bool = False  # the gate out of the current phase must be met


_ACTIVE = frozenset({Status.ACTIVE})
_HELD = frozenset({Status.ON_HOLD})
_OPEN = frozenset({Status.ACTIVE, Status.ON_HOLD})

ALLOWED: dict[tuple[Phase, Decision], Transition] = {
    (Phase.BIZ, Decision.GO): Transition(_ACTIVE, Status.ACTIVE, Phase.DEV, gated=True),
    (Phase.DEV, Decision.GO): Transition(_ACTIVE, Status.ACTIVE, Phase.OPS, gated=True),
    (Phase.DEV, Decision.RECYCLE): Transition(_OPEN, Status.ACTIVE, Phase.BIZ),
    (Phase.OPS, Decision.RECYCLE): Transition(_OPEN, Status.ACTIVE, Phase.DEV),
    (Phase.OPS, Decision.RETIRE): Transition(_OPEN, Status.RETIRED),
    **{(phase, Decision.HOLD): Transition(_ACTIVE, Status.ON_HOLD) for phase in Phase},
    **{(phase, Decision.RESUME): Transition(_HELD, Status.ACTIVE) for phase in Phase},
    **{(phase, Decision.KILL): Transition(_OPEN, Status.CANCELLED) for phase in Phase},
}


def transition_for(initiative: Initiative, decision: Decision) -> Transition:
    """The transition a decision makes, or a ConflictError saying why it cannot be made."""
    status = Status(initiative.status)
    phase = Phase(initiative.phase)
    if status in FINAL_STATUSES:
        raise ConflictError(
            f"{initiative.key} is {status.label.lower()}; no further decision is possible.",
            code="final_status",
        )
    transition = ALLOWED.get((phase, decision))
    if transition is None:
        raise ConflictError(
            f"'{decision.label}' is not a decision for an initiative in {phase.label}.",
            field="decision",
            code="not_allowed",
        )
    if status not in transition.allowed_from:
        raise ConflictError(
            f"'{decision.label}' needs status "
            + " or ".join(s.label.lower() for s in sorted(transition.allowed_from))
            + f"; {initiative.key} is {status.label.lower()}.",
            field="decision",
            code="not_allowed",
        )
    return transition


def available_decisions(initiative: Initiative) -> list[Decision]:
    """Decisions that fit the phase and status (a gated `go` is listed even when unmet)."""
    if initiative.status in FINAL_STATUSES:
        return []
    return [
        decision
        for decision in Decision
        if (t := ALLOWED.get((Phase(initiative.phase), decision))) is not None
        and initiative.status in t.allowed_from
    ]


def describe(initiative: Initiative, decision: Decision) -> str:
    """What a decision would do to this initiative, in words for the decision form."""
    transition = ALLOWED.get((Phase(initiative.phase), decision))
    if transition is None:
        return ""
    if decision == Decision.GO and transition.to_phase is not None:
        return f"Advance to {transition.to_phase.label}; every criterion of the gate must hold."
    if transition.to_phase is not None:
        return f"Back to {transition.to_phase.label}, active; its gate must be passed again."
    effects = {
        Decision.HOLD: "Pause; the phase is kept and scheduled Ops jobs stop.",
        Decision.RESUME: "Back to active in the same phase.",
        Decision.KILL: "Cancel the initiative. Final.",
        Decision.RETIRE: "Retire it from Ops; jobs stop, history and KPIs stay readable. Final.",
    }
    return effects.get(decision, "")


def gate_out_of(phase: str) -> Gate | None:
    return Gate.objects.filter(from_phase=phase).first()


@dataclass(frozen=True)
class CriterionState:
    criterion: Criterion
    satisfied: bool
    explanation: str
    tick: Tick | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "code": self.criterion.code,
            "title": self.criterion.title,
            "kind": self.criterion.kind,
            "satisfied": self.satisfied,
            "explanation": self.explanation,
            "ticked_by": self.tick.ticked_by.get_username() if self.tick else None,
            "ticked_at": self.tick.ticked_at.isoformat() if self.tick else None,
        }


def checklist(initiative: Initiative, gate: Gate) -> list[CriterionState]:
    """Every active criterion of the gate with its state for this initiative."""
    criteria = list(gate.criteria.filter(active=True))
    ticks = {
        tick.criterion_id: tick
        for tick in Tick.objects.filter(
            initiative=initiative, criterion__in=criteria, revoked_at__isnull=True
        ).select_related("ticked_by")
    }
    states = []
    for criterion in criteria:
        if criterion.kind == CriterionKind.AUTO:
            result = run_check(criterion.check_name, initiative)
            states.append(CriterionState(criterion, result.satisfied, result.explanation))
        else:
            tick = ticks.get(criterion.pk)
            if tick is not None:
                explanation = f"Ticked by {tick.ticked_by.get_username()}."
            else:
                explanation = "Not ticked yet: " + TickPolicy(criterion.tick_policy).label + "."
            states.append(CriterionState(criterion, tick is not None, explanation, tick))
    return states


def unmet(states: list[CriterionState]) -> list[CriterionState]:
    return [state for state in states if not state.satisfied]
