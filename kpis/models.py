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
    # The status last alerted on: an alert goes out only when the latest value's status differs.
    last_health = models.CharField(max_length=10, blank=True, default="")
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


class Origin(models.TextChoices):
    RUN = "run", "Job run"
    API = "api", "Pushed through the API"


class Measurement(models.Model):
    """One value of a KPI as of a moment. Writing the same (KPI, as_of) again updates it."""

    kpi = models.ForeignKey(KPI, on_delete=models.CASCADE, related_name="measurements")
    as_of = models.DateTimeField()
    value = models.FloatField()
    origin = models.CharField(max_length=8, choices=Origin.choices)
    # The run that computed it (jobs is the app above this one; a string reference).
    run = models.ForeignKey(
        "jobs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="measurements"
    )
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kpi_id", "as_of"]  # kpi_id: no join into the KPI's own ordering
        constraints = [
            models.UniqueConstraint(fields=["kpi", "as_of"], name="measurement_one_per_instant")
        ]

    def __str__(self) -> str:
        return f"{self.kpi.name} @ {self.as_of:%Y-%m-%d %H:%M}: {self.value}"
