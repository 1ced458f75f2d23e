"""Automatic gate criteria: named checks computed from data.

A criterion row names its check (`Criterion.check_name`); apps register more checks with
`@register` (the KPI check lives in `kpis/checks.py`, the job check in `jobs/checks.py`).
A check never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Step:
    """One thing to do for an unmet automatic criterion: what (`label`), where (`url`, the
    page where it is done), about which object (what an ask names), and what an engineer is
    asked to do about it (`request`, empty: nobody can be asked)."""

    label: str
    url: str
    object_type: str = ""
    object_id: int | None = None
    request: str = ""


@dataclass(frozen=True)
class Guide:
    """How an unmet criterion gets met: the steps, who can take them (`who`, in words) and
    the people on the team who can (`helpers`, whom the accountable PM may ask)."""

    steps: list[Step]
    who: str
    helpers: list[Any]  # users
    ask_kind: str = ""  # the kind of request an ask sends (notifications)
    team_role: str = ""  # the team role that would be a helper (for "add one")

    def step_about(self, object_id: int) -> Step | None:
        return next((step for step in self.steps if step.object_id == object_id), None)


Guider = Callable[[Initiative], Guide]
GUIDES: dict[str, Guider] = {}


def guide(name: str) -> Callable[[Guider], Guider]:
    """Register how the check `name` gets met (the app that registers a check registers its
    guide: `jobs/checks.py` for the jobs criterion). A guide never writes."""

    def decorator(func: Guider) -> Guider:
        if name in GUIDES:
            raise ValueError(f"Guide {name!r} is registered twice.")
        GUIDES[name] = func
        return func

    return decorator


def guide_for(name: str, initiative: Initiative) -> Guide | None:
    func = GUIDES.get(name)
    return None if func is None else func(initiative)


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
