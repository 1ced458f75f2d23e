"""Every write to gates: ticks, unticks and decisions."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError, clean_text, require_text
from initiatives.models import Initiative, Membership, Phase, TeamRole
from initiatives.people import person_name
from initiatives.services import initiative_lock as _lock
from initiatives.services import require_open
from notifications import services as notifications
from notifications.models import Alert, Event
from phases import permissions, rules
from phases.checks import guide_for
from phases.models import Criterion, CriterionKind, Decision, GateDecision, Tick

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class GateError(ConflictError):
    """`go` refused: the gate has unmet criteria (all of them are named)."""

    def __init__(self, initiative: Initiative, unmet: list[rules.CriterionState]) -> None:
        self.unmet = unmet
        listing = "; ".join(f"{s.criterion.title} ({s.explanation})" for s in unmet)
        super().__init__(
            f"{initiative.key} cannot go on: unmet criteria: {listing}", code="gate_not_met"
        )

    @property
    def unmet_codes(self) -> list[str]:
        return [state.criterion.code for state in self.unmet]


def _tickable(initiative: Initiative, criterion: Criterion, user: User) -> None:
    if criterion.kind != CriterionKind.MANUAL:
        raise DomainError(
            f"'{criterion.title}' is computed from data and cannot be ticked by hand.",
            code="automatic",
        )
    require_open(initiative)
    gate = rules.gate_out_of(initiative.phase)
    if gate is None or criterion.gate_id != gate.pk or not criterion.active:
        raise ConflictError(
            f"'{criterion.title}' is not a criterion of {initiative.key}'s next gate.",
            code="not_current_gate",
        )
    permissions.can_tick.check(user, initiative, criterion)


@transaction.atomic
def criterion_tick(
    *,
    initiative: Initiative,
    criterion: Criterion,
    user: User,
    note: str = "",
    evidence_url: str = "",
) -> Tick:
    """Tick a manual criterion of the next gate. Ticking a ticked criterion returns the
    existing tick unchanged (idempotent)."""
    note = clean_text(note, "note", "The note", multiline=True)
    evidence_url = clean_text(evidence_url, "evidence_url", "The evidence link")
    initiative = _lock(initiative)
    _tickable(initiative, criterion, user)
    current = Tick.objects.filter(
        initiative=initiative, criterion=criterion, revoked_at__isnull=True
    ).first()
    if current is not None:
        return current
    return Tick.objects.create(
        initiative=initiative,
        criterion=criterion,
        ticked_by=user,
        note=note,
        evidence_url=evidence_url,
    )


@transaction.atomic
def criterion_untick(
    *, initiative: Initiative, criterion: Criterion, user: User, reason: str = "Unticked"
) -> Tick | None:
    """Revoke the current tick (kept for the history). Returns None when nothing was ticked."""
    reason = clean_text(reason, "reason", "A reason")
    initiative = _lock(initiative)
    _tickable(initiative, criterion, user)
    current = Tick.objects.filter(
        initiative=initiative, criterion=criterion, revoked_at__isnull=True
    ).first()
    if current is None:
        return None
    current.revoked_at = timezone.now()
    current.revoked_by = user
    current.revoke_reason = (reason or "Unticked")[:200]
    current.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    return current


@transaction.atomic
def gate_decide(
    *,
    initiative: Initiative,
    decision: str,
    rationale: str,
    user: User,
    from_phase: str = "",
) -> GateDecision:
    """Record a decision and apply its effect (see `rules.ALLOWED`).

    Only the accountable program manager or an admin decides; `go` needs every criterion of
    the gate; final statuses refuse everything. The decision row stores the checklist as it
    stood, and is never changed afterwards. `from_phase` is the phase the decider saw (the
    page and the API send it): when someone decided meanwhile, the decision is refused as
    stale rather than applied to a phase nobody looked at (two "recycle" at once would
    otherwise take an initiative from Ops back to Biz).
    """
    try:
        kind = Decision(decision)
    except ValueError:
        raise DomainError(f"{decision!r} is not a decision.", field="decision") from None
    rationale = require_text(rationale, "rationale", "A rationale", multiline=True)
    initiative = _lock(initiative)
    permissions.can_decide.check(user, initiative)
    if from_phase and from_phase != initiative.phase:
        raise ConflictError(
            f"{initiative.key} is in {initiative.get_phase_display()} now, not "
            f"{Phase(from_phase).label if from_phase in Phase.values else from_phase}: "
            "someone decided meanwhile. Look at it again before deciding.",
            code="stale",
        )
    transition = rules.transition_for(initiative, kind)

    gate = rules.gate_out_of(initiative.phase)
    states = rules.checklist(initiative, gate) if gate is not None else []
    if transition.gated:
        missing = rules.unmet(states)
        if missing:
            raise GateError(initiative, missing)

    now = timezone.now()
    from_phase, from_status = initiative.phase, initiative.status
    to_phase = transition.to_phase or Phase(from_phase)
    record = GateDecision.objects.create(
        initiative=initiative,
        decision=kind,
        rationale=rationale,
        decided_by=user,
        decided_at=now,
        gate=gate if transition.gated else None,
        from_phase=from_phase,
        to_phase=to_phase,
        from_status=from_status,
        to_status=transition.to_status,
        checklist=[state.snapshot() for state in states],
    )
    initiative.status = transition.to_status
    update_fields = ["status", "updated_at"]
    if to_phase != from_phase:
        initiative.phase = to_phase
        initiative.phase_entered_at = now
        update_fields.append("phase_entered_at")
        update_fields.append("phase")
        if to_phase == Phase.DEV:
            # The Dev timebox counts from each entry into Dev.
            initiative.dev_started_at = now
            update_fields.append("dev_started_at")
        _on_phase_entered(initiative, to_phase, moving_back=kind == Decision.RECYCLE, user=user)
    initiative.save(update_fields=update_fields)
    notifications.event_publish(
        event=Event.INITIATIVE_DECIDED,
        payload={
            "initiative": initiative.key,
            "decision": kind.value,
            "rationale": rationale,
            "decided_by": user.get_username(),
            "phase": initiative.phase,
            "status": initiative.status,
            "from_phase": from_phase,
            "from_status": from_status,
        },
    )
    return record


def _on_phase_entered(
    initiative: Initiative, phase: Phase, *, moving_back: bool, user: User
) -> None:
    if phase == Phase.OPS:
        # The seed: "In this phase, the data scientist isn't involved anymore."
        Membership.objects.filter(
            initiative=initiative, role=TeamRole.DATA_SCIENTIST, left_at__isnull=True
        ).update(left_at=timezone.now(), removed_by=user, leave_reason="Initiative entered Ops")
    if moving_back:
        # A recycled initiative passes its gate again: the sign-offs given for the earlier pass
        # no longer hold (the business re-aligns), so they are revoked, not deleted.
        gate = rules.gate_out_of(phase)
        if gate is not None:
            Tick.objects.filter(
                initiative=initiative, criterion__gate=gate, revoked_at__isnull=True
            ).update(
                revoked_at=timezone.now(),
                revoked_by=user,
                revoke_reason=f"Recycled to {Phase(phase).label}",
            )


ASK_ONCE_PER = dt.timedelta(hours=1)


@transaction.atomic
def engineer_ask(
    *, initiative: Initiative, criterion: Criterion, engineer: User, about: int, user: User
) -> Alert:
    """The accountable PM (or an admin) asks a person who can meet an unmet automatic
    criterion to do it (the jobs criterion: a data or devops engineer on the team, to register
    the job of a KPI): a request in the engineer's alerts and an e-mail (notifications'
    `request_record`), shown in the initiative's history. `about` is the object of one of the
    criterion's steps (the KPI's id). The same engineer is asked about the same object at most
    once per ASK_ONCE_PER; asks on one initiative serialize on its row lock."""
    initiative = _lock(initiative)
    permissions.can_ask.check(user, initiative)
    require_open(initiative)
    gate = rules.gate_out_of(initiative.phase)
    if (
        gate is None
        or criterion.gate_id != gate.pk
        or not criterion.active
        or criterion.kind != CriterionKind.AUTO
    ):
        raise ConflictError(
            f"'{criterion.title}' is not a criterion of {initiative.key}'s next gate.",
            code="not_current_gate",
        )
    guide = guide_for(criterion.check_name, initiative)
    if guide is None or not guide.ask_kind:
        raise DomainError(f"Nobody can be asked about '{criterion.title}'.", code="no_guide")
    step = guide.step_about(about)
    if step is None or not step.request:
        raise ConflictError(
            f"That is done already, or not part of '{criterion.title}'.", field="about"
        )
    if engineer.pk not in {helper.pk for helper in guide.helpers}:
        raise DomainError(
            f"{person_name(engineer)} cannot do this: ask {guide.who}.", field="engineer"
        )
    sender = person_name(user)
    return notifications.request_record(
        kind=guide.ask_kind,
        sender=user,
        recipient=engineer,
        subject=initiative.key,
        url=step.url,
        object_type=step.object_type,
        object_id=step.object_id or "",
        message=(
            f"{sender} asks you to {step.request} ({initiative.key} {initiative.title}: "
            f"“{criterion.title}” of the gate {gate.name})."
        ),
        once_per=ASK_ONCE_PER,
        about=f"{person_name(engineer)} was asked to {step.request}",
    )
