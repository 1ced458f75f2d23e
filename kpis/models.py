from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from initiatives.models import Initiative


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


MAX_DECIMALS = 6
# Decimals by unit when a KPI names none: percentages and hours to one digit, counts and
# money to what a reader expects, anything else to two.
UNIT_DECIMALS = {"%": 1, "h": 1, "min": 0, "s": 1, "ms": 0, "eur": 2, "€": 2, "usd": 2, "$": 2}
DEFAULT_DECIMALS = 2


def decimals_for_unit(unit: str) -> int:
    return UNIT_DECIMALS.get(unit.strip().lower(), DEFAULT_DECIMALS)


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
    # Digits after the decimal point wherever a value is shown (the CSV keeps every digit);
    # None: derived from the unit (`shown_decimals`).
    decimals = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_DECIMALS)],
        help_text="Digits shown after the decimal point; empty: from the unit.",
    )
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

    @property
    def shown_decimals(self) -> int:
        return self.decimals if self.decimals is not None else decimals_for_unit(self.unit)


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


class Resolution(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class Rollup(models.Model):
    """The aggregate of a KPI's finite values in one UTC hour or day, recomputed from the raw
    values by `kpis.rollups.rollups_refresh` in the transaction that writes them (long-range
    charts and the bucket API read these instead of the raw values)."""

    # No index of its own: the unique constraint below starts with kpi_id.
    kpi = models.ForeignKey(KPI, on_delete=models.CASCADE, related_name="rollups", db_index=False)
    resolution = models.CharField(max_length=4, choices=Resolution.choices)
    bucket = models.DateTimeField(help_text="UTC start of the hour or day")
    count = models.BigIntegerField()
    # The sum of the values each divided by 2**64 (exact: a power of two), as the raw charts
    # sum them: the bound MEASUREMENT_MAX_ABS_VALUE may be set up to the largest double, and a
    # plain sum of a few such values overflows (an error on PostgreSQL). The average is
    # sum_scaled / count * 2**64.
    sum_scaled = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    first_as_of = models.DateTimeField()
    first_value = models.FloatField()
    last_as_of = models.DateTimeField()
    last_value = models.FloatField()

    class Meta:
        constraints = [
            # Also the index of range reads: (kpi_id, resolution, bucket).
            models.UniqueConstraint(
                fields=["kpi", "resolution", "bucket"], name="rollup_one_per_bucket"
            ),
            models.CheckConstraint(
                condition=models.Q(resolution__in=Resolution.values), name="rollup_resolution_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kpi_id} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}: {self.count}"
