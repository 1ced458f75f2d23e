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


@register("kpi_jobs_trial_passed", "Every KPI has an enabled job whose last trial run succeeded")
def kpi_jobs_trial_passed(initiative: Initiative) -> CheckResult:
    from kpis.models import RunState, Trigger

    kpis = list(initiative.kpis.select_related("job"))
    if not kpis:
        return CheckResult(False, "No KPI defined.")
    missing, failing = [], []
    for kpi in kpis:
        job = getattr(kpi, "job", None)
        if job is None or not job.enabled:
            missing.append(kpi.name)
            continue
        last = job.runs.filter(trigger=Trigger.TRIAL).order_by("-scheduled_for").first()
        if last is None or last.state != RunState.SUCCEEDED:
            failing.append(kpi.name)
    problems = []
    if missing:
        problems.append("no enabled job: " + ", ".join(missing))
    if failing:
        problems.append("no successful last trial run: " + ", ".join(failing))
    if problems:
        text = "; ".join(problems)
        return CheckResult(False, text[0].upper() + text[1:] + ".")
    return CheckResult(True, "Every KPI has a job whose trial run succeeded.")
