"""KPI health: one function used everywhere (tiles, board cards, API, alerts). Whether a KPI
is stale depends on its job's schedule and is decided in `jobs/scheduling.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from kpis.models import Direction

if TYPE_CHECKING:
    from kpis.models import KPI


class Health(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    UNKNOWN = "unknown", "No value yet"


SEVERITY = {Health.UNKNOWN: 0, Health.HEALTHY: 1, Health.WARNING: 2, Health.CRITICAL: 3}


def kpi_health(kpi: KPI, value: float | None) -> Health:
    """The status of a value against the KPI's thresholds and direction.

    A value exactly on a threshold has reached it: for "higher is better" a value at or below
    the critical threshold is critical, at or below the warning threshold a warning; for
    "lower is better" the same at or above. Missing thresholds are simply not checked.
    """
    if value is None:
        return Health.UNKNOWN
    higher = kpi.direction == Direction.HIGHER
    for threshold, level in (
        (kpi.critical_threshold, Health.CRITICAL),
        (kpi.warning_threshold, Health.WARNING),
    ):
        if threshold is None:
            continue
        if (higher and value <= threshold) or (not higher and value >= threshold):
            return level
    return Health.HEALTHY


def worst(statuses: list[Health]) -> Health:
    return max(statuses, key=lambda h: SEVERITY[h], default=Health.UNKNOWN)
