"""Who may do what through the API: every write action for every role, with the answer the
services' rules give (the `permissions.py` of initiatives, phases, kpis and jobs).

Each action runs against an initiative in the state the action needs (Biz, Dev or Ops), so a
refusal can only come from the permission rule. Besides the status code, each case checks
that the write happened (allowed) or left no trace (refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from initiatives.models import Handover, Initiative, Iteration, Membership
from jobs.models import DataSource, Job, Run
from kpis.models import KPI, Measurement
from phases.models import GateDecision, Tick
from tests.api.helpers import API, error_of
from tests.permission_matrix import MANAGERS, OPERATORS, ROLES, TEAM, USERS, Context

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Action:
    state: str | None  # fixture of the initiative the action works on
    method: str
    url: Callable[[Context], str]
    body: Callable[[Context], Any]
    success: int
    allowed: frozenset[str]
    probe: Callable[[Context], Any]  # what the write changes


def _key(ctx: Context) -> str:
    return ctx.state.key


def _kpi(ctx: Context) -> KPI:
    return ctx.state.kpis.get(name="Fraud caught")


def _job(ctx: Context) -> Job:
    return Job.objects.get(kpi=_kpi(ctx))


def _create_initiative_body(ctx: Context) -> dict[str, Any]:
    body = {"title": "Churn radar", "business_unit": ctx.fixture("unit").pk}
    if ctx.actor == "admin":
        body["accountable"] = "pm"  # an admin names a program manager
    return body


def _engineer_membership(ctx: Context) -> int:
    return Membership.objects.get(initiative=ctx.state, user__username="engineer").pk


def _active_members(ctx: Context) -> int:
    return Membership.objects.filter(initiative=ctx.state, left_at__isnull=True).count()


def _ticks(code: str) -> Callable[[Context], int]:
    def probe(ctx: Context) -> int:
        return Tick.objects.filter(
            initiative=ctx.state, criterion__code=code, revoked_at__isnull=True
        ).count()

    return probe


ACTIONS: dict[str, Action] = {
    "create initiative": Action(
        None,
        "post",
        lambda ctx: f"{API}/initiatives/",
        _create_initiative_body,
        201,
        frozenset({"other_pm", "accountable_pm", "admin"}),
        lambda ctx: Initiative.objects.filter(title="Churn radar").count(),
    ),
    "patch initiative": Action(
        "biz_initiative",
        "patch",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/",
        lambda ctx: {"title": "Renamed"},
        200,
        frozenset(MANAGERS),
        lambda ctx: Initiative.objects.get(pk=ctx.state.pk).title,
    ),
    "tick business_signoff": Action(
        "biz_initiative",
        "put",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/criteria/business_signoff/",
        lambda ctx: {"note": "Signed"},
        200,
        # The business's word: only a stakeholder of the unit, not even an admin.
        frozenset({"stakeholder"}),
        _ticks("business_signoff"),
    ),
    "tick data_feasibility": Action(
        "biz_initiative",
        "put",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/criteria/data_feasibility_confirmed/",
        lambda ctx: {},
        200,
        frozenset(MANAGERS | TEAM),
        _ticks("data_feasibility_confirmed"),
    ),
    "decide hold": Action(
        "biz_initiative",
        "post",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/decisions/",
        lambda ctx: {"decision": "hold", "rationale": "Budget freeze"},
        201,
        frozenset(MANAGERS),
        lambda ctx: GateDecision.objects.filter(initiative=ctx.state).count(),
    ),
    "handover": Action(
        "biz_initiative",
        "post",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/handover/",
        lambda ctx: {"to": ctx.fixture("other_pm").username, "reason": "Leave"},
        201,
        frozenset(MANAGERS),
        lambda ctx: Handover.objects.filter(initiative=ctx.state).count(),
    ),
    "add member": Action(
        "biz_initiative",
        "post",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/members/",
        lambda ctx: {"user": ctx.fixture("devops").username, "role": "devops_engineer"},
        201,
        frozenset(MANAGERS),
        _active_members,
    ),
    "remove member": Action(
        "biz_initiative",
        "delete",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/members/{_engineer_membership(ctx)}/",
        lambda ctx: None,
        204,
        frozenset(MANAGERS),
        _active_members,
    ),
    "add iteration": Action(
        "dev_initiative",
        "post",
        lambda ctx: f"{API}/initiatives/{_key(ctx)}/iterations/",
        lambda ctx: {"tried": "Gradient boosting", "business_feedback": "Better"},
        201,
        frozenset(MANAGERS | TEAM),
        lambda ctx: Iteration.objects.filter(initiative=ctx.state).count(),
    ),
    "define KPI": Action(
        "dev_initiative",
        "post",
        lambda ctx: f"{API}/kpis/",
        lambda ctx: {"initiative": _key(ctx), "name": "Chargebacks", "target": 5},
        201,
        frozenset(MANAGERS | {"engineer_on_team"}),
        lambda ctx: KPI.objects.filter(initiative=ctx.state).count(),
    ),
    "patch KPI": Action(
        "dev_initiative",
        "patch",
        lambda ctx: f"{API}/kpis/{_kpi(ctx).pk}/",
        lambda ctx: {"description": "Share of fraud flagged"},
        200,
        frozenset(MANAGERS | {"engineer_on_team"}),
        lambda ctx: _kpi(ctx).description,
    ),
    "push measurements": Action(
        "dev_initiative",
        "post",
        lambda ctx: f"{API}/kpis/{_kpi(ctx).pk}/measurements/",
        lambda ctx: [{"as_of": "2026-03-01T00:00:00Z", "value": 91.5}],
        200,
        # An integration: admins and the team's engineers; not the PM.
        frozenset(OPERATORS),
        lambda ctx: Measurement.objects.filter(kpi=_kpi(ctx)).count(),
    ),
    "create data source": Action(
        None,
        "post",
        lambda ctx: f"{API}/data-sources/",
        lambda ctx: {"name": "Warehouse", "kind": "http", "url": "https://dwh.example.com"},
        201,
        frozenset({"admin"}),
        lambda ctx: DataSource.objects.count(),
    ),
    "create job": Action(
        "dev_initiative",
        "post",
        lambda ctx: f"{API}/jobs/",
        lambda ctx: {
            "kpi": _kpi(ctx).pk,
            "schedule_kind": "interval",
            "interval_seconds": 600,
            "source_kind": "python",
            "calculation": "portfolio.initiatives_in_ops",
        },
        201,
        frozenset(OPERATORS),
        lambda ctx: Job.objects.filter(kpi__initiative=ctx.state).count(),
    ),
    "patch job": Action(
        "ops_initiative",
        "patch",
        lambda ctx: f"{API}/jobs/{_job(ctx).pk}/",
        lambda ctx: {"timeout_seconds": 45},
        200,
        frozenset(OPERATORS),
        lambda ctx: _job(ctx).timeout_seconds,
    ),
    "run job": Action(
        "ops_initiative",
        "post",
        lambda ctx: f"{API}/jobs/{_job(ctx).pk}/run/",
        lambda ctx: {},
        202,
        # The operators, and the accountable PM ("run now").
        frozenset(OPERATORS | {"accountable_pm"}),
        lambda ctx: Run.objects.filter(job__kpi__initiative=ctx.state).count(),
    ),
}


def expected_status(action: Action, role: str) -> int:
    if role == "anonymous":
        return 401
    return action.success if role in action.allowed else 403


CASES = [
    pytest.param(
        name,
        role,
        expected_status(action, role),
        id=f"{name}-{role}-{expected_status(action, role)}",
    )
    for name, action in ACTIONS.items()
    for role in ROLES
]


@pytest.mark.parametrize(("action_name", "role", "expected"), CASES)
def test_permission_matrix(request, everyone, api_as, unit, action_name, role, expected):
    action = ACTIONS[action_name]
    state = request.getfixturevalue(action.state) if action.state else None
    ctx = Context(state=state, actor=role, request=request)
    user = None if role == "anonymous" else request.getfixturevalue(USERS[role])
    url, body = action.url(ctx), action.body(ctx)
    before = action.probe(ctx)

    client = api_as(user)
    if body is None:
        response = getattr(client, action.method)(url)
    else:
        response = getattr(client, action.method)(url, body, format="json")

    assert response.status_code == expected, response.content
    after = action.probe(ctx)
    if expected == action.success:
        assert after != before, f"{action_name} by {role} answered {expected} but wrote nothing"
    else:
        assert after == before, f"{action_name} by {role} was refused but changed something"
        error = error_of(response)
        assert error["code"] == (
            "not_authenticated" if role == "anonymous" else "permission_denied"
        )


def test_the_matrix_covers_every_role_and_action():
    assert len(CASES) == len(ACTIONS) * len(ROLES) == 16 * 9
