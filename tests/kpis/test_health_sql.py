"""KPI health judged in SQL (`kpis.health.health_severity`, what the board cards use) agrees
with `kpi_health` in Python: over a grid of directions, thresholds set or not, and values on,
just past and far from each threshold, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from kpis.health import BY_SEVERITY, Health, health_severity, kpi_health, latest_health_severity
from kpis.models import KPI, Direction, Measurement, Origin
from kpis.selectors import board_health
from tests.factories import make_initiative

pytestmark = pytest.mark.django_db

# (critical, warning, target) choices per direction, each None or set; the same value for
# warning and critical is among them.
THRESHOLDS = {
    Direction.HIGHER: {
        "critical": (None, 20.0, 50.0),
        "warning": (None, 50.0),
        "target": (None, 90.0),
    },
    Direction.LOWER: {
        "critical": (None, 80.0, 50.0),
        "warning": (None, 50.0),
        "target": (None, 10.0),
    },
}
EPSILON = 1e-9


def _values(*thresholds: float | None) -> list[float | None]:
    """No value, zero, far out both ways, infinities, and each threshold: on it and just
    either side."""
    values: list[float | None] = [None, 0.0, -1e12, 1e12, math.inf, -math.inf]
    for t in thresholds:
        if t is not None:
            values += [t, t - EPSILON, t + EPSILON]
    if connection.vendor == "postgresql":
        values.append(math.nan)  # SQLite cannot store NaN (it becomes NULL)
    return values


def _cases() -> list[tuple[dict[str, Any], float | None]]:
    cases = []
    for direction, choices in THRESHOLDS.items():
        for critical, warning, target in itertools.product(
            choices["critical"], choices["warning"], choices["target"]
        ):
            kpi = {
                "direction": direction,
                "critical_threshold": critical,
                "warning_threshold": warning,
                "target": target,
            }
            cases += [(kpi, value) for value in _values(critical, warning, target)]
    return cases


def test_the_grid_covers_both_directions_and_every_threshold_shape() -> None:
    cases = _cases()
    assert {kpi["direction"] for kpi, _ in cases} == {Direction.HIGHER, Direction.LOWER}
    verdicts = {kpi_health(KPI(**kpi), value) for kpi, value in cases}
    assert verdicts == set(Health)


def test_sql_health_of_the_latest_value_matches_kpi_health(pm: Any, unit: Any) -> None:
    initiative = make_initiative(pm, unit, title="Grid")
    cases = _cases()
    kpis = KPI.objects.bulk_create(
        KPI(initiative=initiative, name=f"case {n}", created_by=pm, **kpi)
        for n, (kpi, _) in enumerate(cases)
    )
    now = timezone.now()
    rows = []
    for kpi, (_, value) in zip(kpis, cases, strict=True):
        if value is None:
            continue
        # An older value with another verdict where there is one: only the latest counts.
        others = [v for v in (-1e12, 1e12) if kpi_health(kpi, v) != kpi_health(kpi, value)]
        older = others[0] if others else 0.0
        rows.append(
            Measurement(kpi=kpi, as_of=now - dt.timedelta(hours=1), value=older, origin=Origin.API)
        )
        rows.append(Measurement(kpi=kpi, as_of=now, value=value, origin=Origin.API))
    Measurement.objects.bulk_create(rows)

    in_sql = dict(
        KPI.objects.filter(initiative=initiative)
        .annotate(severity=latest_health_severity())
        .values_list("pk", "severity")
    )
    mismatches = [
        (
            kpi.direction,
            kpi.critical_threshold,
            kpi.warning_threshold,
            kpi.target,
            value,
            BY_SEVERITY[in_sql[kpi.pk]],
            kpi_health(kpi, value),
        )
        for kpi, (_, value) in zip(kpis, cases, strict=True)
        if BY_SEVERITY[in_sql[kpi.pk]] != kpi_health(kpi, value)
    ]
    assert mismatches == []
    assert len(in_sql) == len(cases) > 200


def test_sql_health_of_each_measurement_matches_kpi_health(pm: Any, unit: Any) -> None:
    """The same expression with the KPI reached through a join (`F("kpi__...")`)."""
    initiative = make_initiative(pm, unit, title="Grid")
    cases = [(kpi, value) for kpi, value in _cases() if value is not None]
    kpis = KPI.objects.bulk_create(
        KPI(initiative=initiative, name=f"case {n}", created_by=pm, **kpi)
        for n, (kpi, _) in enumerate(cases)
    )
    now = timezone.now()
    Measurement.objects.bulk_create(
        Measurement(kpi=kpi, as_of=now, value=value, origin=Origin.API)
        for kpi, (_, value) in zip(kpis, cases, strict=True)
    )
    severity = health_severity(F("value"), lambda name: F(f"kpi__{name}"))
    in_sql = dict(
        Measurement.objects.filter(kpi__initiative=initiative)
        .annotate(severity=severity)
        .values_list("kpi_id", "severity")
    )
    for kpi, (_, value) in zip(kpis, cases, strict=True):
        assert BY_SEVERITY[in_sql[kpi.pk]] == kpi_health(kpi, value), (kpi.__dict__, value)


def test_board_health_is_the_worst_latest_health_per_initiative(pm: Any, unit: Any) -> None:
    now = timezone.now()

    def initiative_with(*values: float | None) -> Any:
        initiative = make_initiative(pm, unit, title="Board")
        for n, value in enumerate(values):
            kpi = KPI.objects.create(
                initiative=initiative,
                name=f"K{n}",
                created_by=pm,
                warning_threshold=50,
                critical_threshold=20,
            )
            if value is not None:
                Measurement.objects.create(kpi=kpi, as_of=now, value=value, origin=Origin.API)
        return initiative

    critical = initiative_with(90.0, 10.0, None)
    warning = initiative_with(None, 50.0, 90.0)
    healthy = initiative_with(None, 90.0)
    unknown = initiative_with(None, None)
    none = initiative_with()
    assert board_health([critical, warning, healthy, unknown, none]) == {
        critical.pk: Health.CRITICAL,
        warning.pk: Health.WARNING,
        healthy.pk: Health.HEALTHY,
        unknown.pk: Health.UNKNOWN,
    }
    assert board_health([]) == {}
