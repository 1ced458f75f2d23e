"""Automatic gate criteria: named checks computed from data.

A criterion row names its check (`Criterion.check_name`); apps register more checks with
`@register` (the KPI check lives in `kpis/checks.py`, the job check in `jobs/checks.py`).
A check never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from initiatives.models import Initiative, TeamRole


@dataclass(frozen=True)
class CheckResult:
    satisfied: bool
    explanation: str


@dataclass(frozen=True)
class Check:
    name: str
    label: str
    func: Callable[[Initiative], CheckResult]


CHECKS: dict[str, Check] = {}


def register(
    name: str, label: str
) -> Callable[[Callable[[Initiative], CheckResult]], Callable[[Initiative], CheckResult]]:
    def decorator(func: Callable[[Initiative], CheckResult]) -> Callable[[Initiative], CheckResult]:
        if name in CHECKS:
            raise ValueError(f"Check {name!r} is registered twice.")
        CHECKS[name] = Check(name=name, label=label, func=func)
        return func

    return decorator


def run_check(name: str, initiative: Initiative) -> CheckResult:
    check = CHECKS.get(name)
    if check is None:
        return CheckResult(False, f"The check {name!r} does not exist; an admin must fix it.")
    return check.func(initiative)


def _fields_written(initiative: Initiative, fields: dict[str, str]) -> CheckResult:
    missing = [label for field, label in fields.items() if not getattr(initiative, field).strip()]
    if missing:
        return CheckResult(False, "Not written yet: " + ", ".join(missing) + ".")
    return CheckResult(True, "Written.")


@register("problem_and_requirements", "Business problem and requirements written")
def problem_and_requirements(initiative: Initiative) -> CheckResult:
    return _fields_written(
        initiative,
        {"business_problem": "business problem", "business_requirements": "business requirements"},
    )


@register("use_case_and_algorithm", "Use case and algorithm translation written")
def use_case_and_algorithm(initiative: Initiative) -> CheckResult:
    return _fields_written(
        initiative, {"use_case": "use case", "algorithm_translation": "algorithm translation"}
    )


def _active_team_roles(initiative: Initiative) -> set[str]:
    return set(initiative.memberships.filter(left_at__isnull=True).values_list("role", flat=True))


@register("team_has_engineer_and_scientist", "Team has a data engineer and a data scientist")
def team_has_engineer_and_scientist(initiative: Initiative) -> CheckResult:
    roles = _active_team_roles(initiative)
    missing = [
        label
        for role, label in (
            (TeamRole.DATA_ENGINEER, "data engineer"),
            (TeamRole.DATA_SCIENTIST, "data scientist"),
        )
        if role not in roles
    ]
    if missing:
        return CheckResult(False, "No " + " and no ".join(missing) + " on the team yet.")
    return CheckResult(True, "The team has a data engineer and a data scientist.")


@register("iteration_with_feedback", "At least one iteration with business feedback")
def iteration_with_feedback(initiative: Initiative) -> CheckResult:
    iterations = initiative.iterations.all()
    if not iterations.exists():
        return CheckResult(False, "No iteration recorded yet.")
    if not iterations.exclude(business_feedback="").exists():
        return CheckResult(False, "No iteration has business feedback yet.")
    return CheckResult(True, "Business feedback is recorded.")


@register("ops_owner_on_team", "An ops owner (data engineer or devops engineer) on the team")
def ops_owner_on_team(initiative: Initiative) -> CheckResult:
    if _active_team_roles(initiative) & {TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER}:
        return CheckResult(True, "An engineer will operate it.")
    return CheckResult(False, "No data engineer or devops engineer on the team yet.")
