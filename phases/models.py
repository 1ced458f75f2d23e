from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from bizdevops.history import AppendOnlyModel
from initiatives.models import Initiative, Phase, Status


class Decision(models.TextChoices):
    GO = "go", "Go"
    HOLD = "hold", "Hold"
    RESUME = "resume", "Resume"
    RECYCLE = "recycle", "Recycle"
    KILL = "kill", "Kill"
    RETIRE = "retire", "Retire"


class CriterionKind(models.TextChoices):
    AUTO = "auto", "Automatic"
    MANUAL = "manual", "Manual"


class TickPolicy(models.TextChoices):
    TEAM = "team", "The accountable program manager or an active team member"
    UNIT_STAKEHOLDER = "unit_stakeholder", "A business stakeholder of the initiative's unit"


def check_choices() -> list[tuple[str, str]]:
    from phases.checks import CHECKS

    return [("", "—")] + [(name, check.label) for name, check in sorted(CHECKS.items())]


class Gate(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    from_phase = models.CharField(max_length=8, choices=Phase.choices, unique=True)
    to_phase = models.CharField(max_length=8, choices=Phase.choices)

    class Meta:
        ordering = ["from_phase"]

    def __str__(self) -> str:
        return self.name


class Criterion(models.Model):
    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="criteria")
    code = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=CriterionKind.choices)
    check_name = models.CharField(
        max_length=60,
        blank=True,
        choices=check_choices,
        help_text="Automatic criteria: the check in code that computes it from data.",
    )
    tick_policy = models.CharField(
        max_length=20,
        choices=TickPolicy.choices,
        blank=True,
        help_text="Manual criteria: who may tick it.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["gate", "position", "id"]
        verbose_name_plural = "criteria"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind=CriterionKind.AUTO)
                    & ~models.Q(check_name="")
                    & models.Q(tick_policy="")
                )
                | (
                    models.Q(kind=CriterionKind.MANUAL)
                    & models.Q(check_name="")
                    & ~models.Q(tick_policy="")
                ),
                name="criterion_kind_consistent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gate.code}: {self.title}"


class Tick(models.Model):
    """A manual criterion ticked by a named user. Unticking revokes the row, never deletes it."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="ticks")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="ticks")
    ticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    ticked_at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)
    evidence_url = models.URLField(blank=True, max_length=500)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    revoke_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["ticked_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["initiative", "criterion"],
                condition=models.Q(revoked_at__isnull=True),
                name="tick_unique_current",
            )
        ]

    def __str__(self) -> str:
        return f"{self.initiative.key}: {self.criterion.code} by {self.ticked_by}"


class GateDecision(AppendOnlyModel):
    """One recorded decision with the checklist as it stood at that moment. Append-only."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="decisions")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    rationale = models.TextField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(default=timezone.now)
    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, null=True, blank=True)
    from_phase = models.CharField(max_length=8, choices=Phase.choices)
    to_phase = models.CharField(max_length=8, choices=Phase.choices)
    from_status = models.CharField(max_length=16, choices=Status.choices)
    to_status = models.CharField(max_length=16, choices=Status.choices)
    checklist = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["decided_at", "id"]
        indexes = [models.Index(fields=["initiative", "decided_at"], name="decision_timeline")]

    def __str__(self) -> str:
        return f"{self.initiative.key}: {self.decision} by {self.decided_by}"
