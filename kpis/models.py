from __future__ import annotations

from django.conf import settings
from django.db import models

from initiatives.models import Initiative


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class KPI(models.Model):
    """A success KPI of an initiative, with its target and warning / critical thresholds."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="kpis")
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=30, blank=True, help_text="e.g. %, EUR, hours")
    description = models.TextField(blank=True)
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.HIGHER)
    target = models.FloatField(null=True, blank=True)
    warning_threshold = models.FloatField(null=True, blank=True)
    critical_threshold = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["initiative", "name"]
        verbose_name = "KPI"
        constraints = [
            models.UniqueConstraint(fields=["initiative", "name"], name="kpi_name_unique"),
            models.CheckConstraint(
                condition=models.Q(direction__in=Direction.values), name="kpi_direction_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.initiative.key}: {self.name}"
