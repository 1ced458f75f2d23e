"""The automatic gate criterion about KPIs (the one about their jobs is in jobs/checks.py)."""

from __future__ import annotations

from initiatives.models import Initiative
from phases.checks import CheckResult, register


@register("success_kpi_with_target", "At least one success KPI with a target")
def success_kpi_with_target(initiative: Initiative) -> CheckResult:
    if not initiative.kpis.exists():
        return CheckResult(False, "No KPI defined yet.")
    if not initiative.kpis.filter(target__isnull=False).exists():
        return CheckResult(False, "No KPI has a target yet.")
    return CheckResult(True, "A success KPI with a target is defined.")
