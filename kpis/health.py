"""KPI health: one function used everywhere (tiles, board cards, API, alerts). Whether a KPI
is stale depends on its job's schedule and is decided in `jobs/scheduling.py`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, GreaterThanOrEqual, IsNull, LessThanOrEqual

from kpis.models import Direction, Measurement

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


BY_SEVERITY = {rank: health for health, rank in SEVERITY.items()}


def health_severity(value: Any, kpi: Any = F) -> Case:
    """`SEVERITY[kpi_health(kpi, value)]` as an SQL expression, for judging many values in
    one query; tests/kpis/test_health_sql.py holds it to `kpi_health` over a grid of cases.

    `value` is an expression (NULL: no value yet). `kpi(name)` refers to a field of the KPI:
    `F` when the KPI is the row itself, `OuterRef` from a subquery over its measurements."""
    higher = Exact(kpi("direction"), Value(Direction.HIGHER.value))
    lower = Exact(kpi("direction"), Value(Direction.LOWER.value))
    levels = [
        # A NULL threshold makes the comparison NULL, so that level is skipped, as in Python.
        When(
            Q(higher, LessThanOrEqual(value, kpi(field)))
            | Q(lower, GreaterThanOrEqual(value, kpi(field))),
            then=Value(SEVERITY[level]),
        )
        for field, level in (
            ("critical_threshold", Health.CRITICAL),
            ("warning_threshold", Health.WARNING),
        )
    ]
    return Case(
        When(IsNull(value, True), then=Value(SEVERITY[Health.UNKNOWN])),
        # NaN (old rows, from before values were bounded) compares false in Python but is
        # above every number in PostgreSQL; SQLite cannot store it.
        When(Exact(value, Value(math.nan)), then=Value(SEVERITY[Health.HEALTHY])),
        *levels,
        default=Value(SEVERITY[Health.HEALTHY]),
    )


def latest_health_severity() -> Coalesce:
    """For a KPI row: the severity of its latest value (by `as_of`), unknown without one.
    One index probe of (kpi, as_of) per KPI."""
    latest = (
        Measurement.objects.filter(kpi=OuterRef("pk"))
        .order_by("-as_of")
        .annotate(severity=health_severity(F("value"), OuterRef))
        .values("severity")[:1]
    )
    return Coalesce(Subquery(latest), Value(SEVERITY[Health.UNKNOWN]))
