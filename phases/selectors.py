"""Reads for the gate panel and the history timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.http import Http404

from initiatives.models import Initiative, Phase
from initiatives.people import ambiguous_names, person_name
from notifications.models import Alert
from phases import permissions, rules
from phases.checks import Guide, guide_for
from phases.models import Criterion, CriterionKind, Decision, Gate, GateDecision, Tick

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


@dataclass(frozen=True)
class CriterionRow:
    state: rules.CriterionState
    can_tick: bool
    # How an unmet automatic criterion gets met (steps, who), when its check has a guide;
    # `can_ask`: this user may ask the guide's helpers (the accountable PM or an admin).
    guide: Guide | None = None
    can_ask: bool = False


@dataclass(frozen=True)
class GatePanel:
    gate: Gate | None
    rows: list[CriterionRow]
    decisions: list[Decision]
    can_decide: bool
    descriptions: dict[Decision, str] = field(default_factory=dict)

    @property
    def unmet(self) -> list[rules.CriterionState]:
        return [row.state for row in self.rows if not row.state.satisfied]

    @property
    def choices(self) -> list[tuple[Decision, str]]:
        return [(decision, self.descriptions.get(decision, "")) for decision in self.decisions]

    @property
    def has_final(self) -> bool:
        """A final decision (kill, retire) is offered: the form asks for its confirmation."""
        return any(decision in (Decision.KILL, Decision.RETIRE) for decision in self.decisions)

    @property
    def met_count(self) -> int:
        return sum(1 for row in self.rows if row.state.satisfied)


def criterion_get(code: str) -> Criterion:
    """A gate criterion by code (criteria are configuration, the same for every initiative:
    who may tick one is decided per initiative by `permissions.can_tick`)."""
    try:
        return Criterion.objects.select_related("gate").get(code=code)
    except Criterion.DoesNotExist:
        raise Http404(f"No criterion {code}.") from None


def gate_panel(initiative: Initiative, user: User | AnonymousUser) -> GatePanel:
    """The next gate of an initiative as the user sees it: each criterion with its state and
    whether this user may tick it, and the decisions the user may record."""
    gate = None if initiative.is_final else rules.gate_out_of(initiative.phase)
    states = rules.checklist(initiative, gate) if gate is not None else []
    rights = permissions.tick_rights(user, initiative) if states else frozenset()
    can_decide = permissions.can_decide(user, initiative)
    decisions = rules.available_decisions(initiative) if can_decide else []
    can_ask = permissions.can_ask(user, initiative)
    rows = []
    for state in states:
        criterion = state.criterion
        guide = None
        if not state.satisfied and criterion.kind == CriterionKind.AUTO:
            guide = guide_for(criterion.check_name, initiative)
        rows.append(
            CriterionRow(
                state,
                permissions.can_tick(user, initiative, criterion, rights),
                guide,
                can_ask and guide is not None and bool(guide.ask_kind),
            )
        )
    return GatePanel(
        gate=gate,
        rows=rows,
        decisions=decisions,
        can_decide=can_decide,
        descriptions={decision: rules.describe(initiative, decision) for decision in decisions},
    )


@dataclass(frozen=True)
class TimelineEvent:
    at: dt.datetime
    kind: str  # created, decision, handover, tick, untick, joined, left, request
    actor: User | None
    title: str
    detail: str = ""
    badges: list[str] = field(default_factory=list)


def _decision_title(record: GateDecision) -> str:
    if record.from_phase != record.to_phase:
        phase = Phase(record.to_phase).label
        return f"{record.get_decision_display()}: entered {phase}"
    return f"{record.get_decision_display()}: {record.get_to_status_display().lower()}"


def timeline(initiative: Initiative) -> list[TimelineEvent]:
    """Everything that happened to an initiative, newest first, in a fixed number of queries."""
    names = ambiguous_names()

    def who(user: User) -> str:
        return person_name(user, names)

    events = [
        TimelineEvent(
            initiative.created_at, "created", initiative.created_by, "Initiative created in Biz"
        )
    ]
    for record in initiative.decisions.select_related("decided_by"):
        events.append(
            TimelineEvent(
                record.decided_at,
                "decision",
                record.decided_by,
                _decision_title(record),
                record.rationale,
                [record.decision],
            )
        )
    for handover in initiative.handovers.select_related("from_user", "to_user", "handed_over_by"):
        events.append(
            TimelineEvent(
                handover.at,
                "handover",
                handover.handed_over_by,
                f"Accountability handed over from {who(handover.from_user)} "
                f"to {who(handover.to_user)}",
                handover.reason,
            )
        )
    ticks = Tick.objects.filter(initiative=initiative).select_related(
        "criterion", "ticked_by", "revoked_by"
    )
    for tick in ticks:
        events.append(
            TimelineEvent(
                tick.ticked_at, "tick", tick.ticked_by, f"Ticked: {tick.criterion.title}", tick.note
            )
        )
        if tick.revoked_at is not None:
            events.append(
                TimelineEvent(
                    tick.revoked_at,
                    "untick",
                    tick.revoked_by,
                    f"Unticked: {tick.criterion.title}",
                    tick.revoke_reason,
                )
            )
    for member in initiative.memberships.select_related("user", "added_by", "removed_by"):
        joiner = f"{who(member.user)} ({member.get_role_display().lower()})"
        events.append(
            TimelineEvent(member.joined_at, "joined", member.added_by, f"{joiner} joined")
        )
        if member.left_at is not None:
            events.append(
                TimelineEvent(
                    member.left_at, "left", member.removed_by, f"{joiner} left", member.leave_reason
                )
            )
    # Requests the accountable PM sent from the gate panel (`services.engineer_ask`): alerts
    # with a sender about this initiative.
    requests = (
        Alert.objects.filter(subject=initiative.key, sent_by__isnull=False)
        .select_related("sent_by")
        .prefetch_related("recipients")
    )
    for request in requests:
        asked = ", ".join(who(user) for user in request.recipients.all())
        events.append(
            TimelineEvent(
                request.created_at, "request", request.sent_by, f"Asked {asked}", request.message
            )
        )
    events.sort(key=lambda event: event.at, reverse=True)
    return events
