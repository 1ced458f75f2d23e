"""KPI health (healthy / warning / critical / unknown) and the worst of several (staleness,
which depends on the job's schedule, is tested in tests/jobs/test_staleness.py).

Pure functions on unsaved model instances: no database needed."""

from __future__ import annotations

import pytest

from kpis.health import Health, kpi_health, worst
from kpis.models import KPI, Direction


def kpi(
    direction: str = Direction.HIGHER,
    *,
    target: float | None = None,
    warning: float | None = None,
    critical: float | None = None,
) -> KPI:
    return KPI(
        name="k",
        direction=direction,
        target=target,
        warning_threshold=warning,
        critical_threshold=critical,
    )


# kpi_health: higher is better (critical <= warning <= target)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100.0, Health.HEALTHY),
        (90.0, Health.HEALTHY),  # on target
        (80.000001, Health.HEALTHY),  # just above the warning threshold
        (80.0, Health.WARNING),  # exactly on the warning threshold: reached
        (79.9, Health.WARNING),
        (50.000001, Health.WARNING),
        (50.0, Health.CRITICAL),  # exactly on the critical threshold: reached
        (49.0, Health.CRITICAL),
        (-1e9, Health.CRITICAL),
        (0.0, Health.CRITICAL),
    ],
)
def test_higher_is_better(value: float, expected: Health) -> None:
    assert kpi_health(kpi(Direction.HIGHER, target=90, warning=80, critical=50), value) == expected


# kpi_health: lower is better (critical >= warning >= target)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, Health.HEALTHY),
        (-3.0, Health.HEALTHY),
        (2.0, Health.HEALTHY),  # on target
        (4.999999, Health.HEALTHY),
        (5.0, Health.WARNING),  # exactly on the warning threshold: reached
        (9.999999, Health.WARNING),
        (10.0, Health.CRITICAL),  # exactly on the critical threshold: reached
        (1e9, Health.CRITICAL),
    ],
)
def test_lower_is_better(value: float, expected: Health) -> None:
    assert kpi_health(kpi(Direction.LOWER, target=2, warning=5, critical=10), value) == expected


def test_warning_and_critical_on_the_same_value_is_critical() -> None:
    assert kpi_health(kpi(Direction.HIGHER, warning=50, critical=50), 50) == Health.CRITICAL
    assert kpi_health(kpi(Direction.LOWER, warning=50, critical=50), 50) == Health.CRITICAL
    assert kpi_health(kpi(Direction.HIGHER, warning=50, critical=50), 50.5) == Health.HEALTHY


def test_a_zero_threshold_is_a_threshold_not_a_missing_one() -> None:
    higher = kpi(Direction.HIGHER, warning=0.5, critical=0.0)
    assert kpi_health(higher, 0.0) == Health.CRITICAL
    assert kpi_health(higher, 0.25) == Health.WARNING
    assert kpi_health(higher, 1.0) == Health.HEALTHY
    lower = kpi(Direction.LOWER, warning=0.0, target=-1.0)
    assert kpi_health(lower, 0.0) == Health.WARNING
    assert kpi_health(lower, -0.5) == Health.HEALTHY


@pytest.mark.parametrize("direction", [Direction.HIGHER, Direction.LOWER])
@pytest.mark.parametrize("value", [-1e12, -1.0, 0.0, 1.0, 1e12])
def test_without_thresholds_every_value_is_healthy(direction: str, value: float) -> None:
    assert kpi_health(kpi(direction), value) == Health.HEALTHY
    # A target alone sets no threshold.
    assert kpi_health(kpi(direction, target=50), value) == Health.HEALTHY


def test_only_a_critical_threshold() -> None:
    only_critical = kpi(Direction.HIGHER, target=90, critical=50)
    assert kpi_health(only_critical, 60) == Health.HEALTHY  # no warning band
    assert kpi_health(only_critical, 50) == Health.CRITICAL
    lower = kpi(Direction.LOWER, critical=10)
    assert kpi_health(lower, 9.99) == Health.HEALTHY
    assert kpi_health(lower, 10) == Health.CRITICAL


def test_only_a_warning_threshold_is_never_critical() -> None:
    only_warning = kpi(Direction.HIGHER, warning=80)
    assert kpi_health(only_warning, 80) == Health.WARNING
    assert kpi_health(only_warning, -1e9) == Health.WARNING
    assert kpi_health(only_warning, 80.1) == Health.HEALTHY
    lower = kpi(Direction.LOWER, warning=5)
    assert kpi_health(lower, 1e9) == Health.WARNING
    assert kpi_health(lower, 4) == Health.HEALTHY


@pytest.mark.parametrize("direction", [Direction.HIGHER, Direction.LOWER])
def test_no_value_is_unknown(direction: str) -> None:
    assert kpi_health(kpi(direction, target=1, warning=2, critical=3), None) == Health.UNKNOWN
    assert kpi_health(kpi(direction), None) == Health.UNKNOWN


def test_health_values_are_the_strings_templates_and_the_api_use() -> None:
    assert [h.value for h in Health] == ["healthy", "warning", "critical", "unknown"]
    assert Health.UNKNOWN.label == "No value yet"


# worst


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Health.UNKNOWN),
        ([Health.UNKNOWN], Health.UNKNOWN),
        ([Health.HEALTHY], Health.HEALTHY),
        ([Health.UNKNOWN, Health.HEALTHY], Health.HEALTHY),
        ([Health.HEALTHY, Health.UNKNOWN], Health.HEALTHY),
        ([Health.HEALTHY, Health.WARNING, Health.HEALTHY], Health.WARNING),
        ([Health.WARNING, Health.UNKNOWN], Health.WARNING),
        ([Health.CRITICAL, Health.WARNING, Health.HEALTHY, Health.UNKNOWN], Health.CRITICAL),
        ([Health.HEALTHY, Health.HEALTHY, Health.CRITICAL], Health.CRITICAL),
    ],
)
def test_worst(statuses: list[Health], expected: Health) -> None:
    assert worst(statuses) == expected
    assert worst(list(reversed(statuses))) == expected
