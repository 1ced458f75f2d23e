from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from bizdevops.history import AppendOnlyModel

KEY_PREFIX = "BDO-"
TIMEBOX_MIN_WEEKS = 1
TIMEBOX_MAX_WEEKS = 12
TIMEBOX_DEFAULT_WEEKS = 6


class Phase(models.TextChoices):
    BIZ = "biz", "Biz"
    DEV = "dev", "Dev"
    OPS = "ops", "Ops"


class Status(models.TextChoices):
    ACTIVE = "active", "Active"
    ON_HOLD = "on_hold", "On hold"
    CANCELLED = "cancelled", "Cancelled"
    RETIRED = "retired", "Retired"


FINAL_STATUSES = frozenset({Status.CANCELLED, Status.RETIRED})


class TeamRole(models.TextChoices):
    DATA_SCIENTIST = "data_scientist", "Data scientist"
    DATA_ENGINEER = "data_engineer", "Data engineer"
    DEVOPS_ENGINEER = "devops_engineer", "DevOps engineer"
    STAKEHOLDER = "stakeholder", "Stakeholder"


# Who operates an initiative's jobs in Ops, and who builds in Dev.
ENGINEER_ROLES = frozenset({TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER})
BUILDER_ROLES = frozenset({TeamRole.DATA_SCIENTIST, *ENGINEER_ROLES})


class BusinessUnit(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    stakeholders = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="business_units",
        blank=True,
        help_text="Business stakeholders who belong to this unit and may sign off its gates.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Initiative(models.Model):
    title = models.CharField(max_length=200)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="initiatives"
    )
    # Exactly one accountable program manager at every moment: a non-null foreign key.
    # It changes only through `initiative_hand_over`, which writes a Handover row.
    accountable = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="accountable_for"
    )
    business_problem = models.TextField(blank=True)
    business_requirements = models.TextField(blank=True)
    use_case = models.TextField(blank=True)
    algorithm_translation = models.TextField(
        blank=True, help_text="How the business problem becomes an algorithm."
    )
    data_feasibility = models.TextField(
        blank=True, help_text="Which internal data answers the business problem."
    )
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.BIZ)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    dev_timebox_weeks = models.PositiveSmallIntegerField(
        default=TIMEBOX_DEFAULT_WEEKS,
        validators=[MinValueValidator(TIMEBOX_MIN_WEEKS), MaxValueValidator(TIMEBOX_MAX_WEEKS)],
        help_text="How long Dev may take, counted from entering Dev (the seed says 3-6 weeks).",
    )
    dev_started_at = models.DateTimeField(null=True, blank=True)
    phase_entered_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["phase", "status"], name="initiative_phase_status")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(phase__in=Phase.values), name="initiative_phase_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="initiative_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    dev_timebox_weeks__gte=TIMEBOX_MIN_WEEKS,
                    dev_timebox_weeks__lte=TIMEBOX_MAX_WEEKS,
                ),
                name="initiative_timebox_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def dev_due_at(self) -> dt.datetime | None:
        return dev_due(self.phase, self.status, self.dev_started_at, self.dev_timebox_weeks)

    @property
    def dev_days_left(self) -> int | None:
        """Whole days left in the Dev timebox; negative when overdue; None outside Dev."""
        return days_left(self.dev_due_at)

    @property
    def dev_overdue(self) -> bool:
        left = self.dev_days_left
        return left is not None and left < 0


def dev_due(phase: str, status: str, started: dt.datetime | None, weeks: int) -> dt.datetime | None:
    """When the Dev timebox of an initiative in this state ends (None outside Dev, before it
    started, or once closed). A function of the fields, so that lists reading plain rows
    (the board's cards) apply the model's rule."""
    if phase != Phase.DEV or started is None or status in FINAL_STATUSES:
        return None
    return started + dt.timedelta(weeks=weeks)


def days_left(due: dt.datetime | None) -> int | None:
    """Whole days left until `due`; negative when past it; None without one."""
    if due is None:
        return None
    days = (due - timezone.now()).total_seconds() / 86400
    if days >= 0:
        return math.ceil(days)  # half a day left is "1 day left"
    # Whole days overdue, but at least one: an hour past the due moment is overdue.
    return -max(1, math.floor(-days))


class Handover(AppendOnlyModel):
    """A change of the accountable program manager: who handed over to whom, why, by whom."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="handovers")
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    handed_over_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.initiative.key}: {self.from_user} → {self.to_user}"


class Membership(models.Model):
    """A person's role on one initiative's team; leaving keeps the row (left_at)."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=TeamRole.choices)
    joined_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    left_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    leave_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["initiative", "user", "role"],
                condition=models.Q(left_at__isnull=True),
                name="membership_unique_active",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=TeamRole.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) on {self.initiative.key}"

    @property
    def is_active(self) -> bool:
        return self.left_at is None


class Iteration(models.Model):
    """One Dev iteration: what was tried and what the business said about it."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="iterations")
    number = models.PositiveIntegerField()
    tried = models.TextField(help_text="What was tried in this iteration.")
    business_feedback = models.TextField(blank=True, help_text="What the business said.")
    happened_on = models.DateField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    feedback_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["initiative", "number"]
        constraints = [
            models.UniqueConstraint(fields=["initiative", "number"], name="iteration_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.initiative.key} iteration {self.number}"
