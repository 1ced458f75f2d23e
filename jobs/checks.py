"""The automatic gate criterion about KPI jobs (Dev → Ops)."""

from __future__ import annotations

from initiatives.models import Initiative
from jobs.models import Job, RunState, Trigger
from phases.checks import CheckResult, register


@register("kpi_jobs_trial_passed", "Every KPI has an enabled job whose last trial run succeeded")
def kpi_jobs_trial_passed(initiative: Initiative) -> CheckResult:
    kpis = list(initiative.kpis.all())
    if not kpis:
        return CheckResult(False, "No KPI defined.")
    jobs = {job.kpi_id: job for job in Job.objects.filter(kpi__in=kpis)}
    missing, failing = [], []
    for kpi in kpis:
        job = jobs.get(kpi.pk)
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
