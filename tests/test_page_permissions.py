"""Who may do what through the pages: every write action of the web UI for every role, with
the answer the permission rules give (the `permissions.py` of each app), like the API's
matrix in tests/api/test_permissions.py.

Each action runs against an initiative in the state the action needs, so a refusal can only
come from the permission rule. An allowed action redirects (post/redirect/get) and writes; a
refused one answers 403 with the friendly page, with and without htmx, and writes nothing;
its form page (where it has one) is refused too. Anonymous users are sent to the login page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from initiatives import services as initiative_services
from initiatives.models import Handover, Initiative, Iteration, Membership
from jobs.models import Job, Run
from kpis.models import KPI
from notifications.models import Alert
from phases.models import GateDecision, Tick
from tests.factories import FULL_STORY
from tests.helpers import FORBIDDEN, HTMX
from tests.permission_matrix import MANAGERS, OPERATORS, ROLES, TEAM, USERS, Context

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Action:
    state: str | None  # fixture of the initiative the action works on
    url: Callable[[Context], str]
    data: Callable[[Context], dict[str, Any]]
    allowed: frozenset[str]
    probe: Callable[[Context], Any]  # what the write changes
    form_page: bool = False  # GET shows the action's form (refused like the POST)


def _url(ctx: Context, tail: str = "") -> str:
    return f"/initiatives/{ctx.state.key}/{tail}"


def _kpi(ctx: Context) -> KPI:
    return ctx.state.kpis.get(name="Fraud caught")


def _job(ctx: Context) -> Job:
    return Job.objects.get(kpi=_kpi(ctx))


def _initiative_form(ctx: Context, **changes: Any) -> dict[str, Any]:
    data = {"title": "Churn radar", "business_unit": ctx.fixture("unit").pk}
    data.update(dev_timebox_weeks=6, **FULL_STORY)
    if ctx.actor == "admin" and ctx.state is None:
        data["accountable"] = ctx.fixture("pm").pk  # an admin names a program manager
    return data | changes


def _ticks(code: str) -> Callable[[Context], int]:
    def probe(ctx: Context) -> int:
        return Tick.objects.filter(
            initiative=ctx.state, criterion__code=code, revoked_at__isnull=True
        ).count()

    return probe


def _engineer_membership(ctx: Context) -> int:
    return Membership.objects.get(initiative=ctx.state, user__username="engineer").pk


def _active_members(ctx: Context) -> int:
    return Membership.objects.filter(initiative=ctx.state, left_at__isnull=True).count()


def _job_form(ctx: Context) -> dict[str, Any]:
    job = _job(ctx)
    return {
        "schedule_kind": job.schedule_kind,
        "interval_seconds": job.interval_seconds,
        "source_kind": job.source_kind,
        "calculation": job.calculation,
        "timeout_seconds": 45,
        "max_retries": job.max_retries,
        "enabled": "on",
    }


ACTIONS: dict[str, Action] = {
    "create initiative": Action(
        None,
        lambda ctx: "/initiatives/new/",
        _initiative_form,
        frozenset({"other_pm", "accountable_pm", "admin"}),
        lambda ctx: Initiative.objects.filter(title="Churn radar").count(),
        form_page=True,
    ),
    "edit initiative": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "edit/"),
        lambda ctx: _initiative_form(ctx, title="Renamed"),
        frozenset(MANAGERS),
        lambda ctx: Initiative.objects.get(pk=ctx.state.pk).title,
        form_page=True,
    ),
    "tick business_signoff": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "criteria/business_signoff/"),
        lambda ctx: {"note": "Signed"},
        # The business's word: only a stakeholder of the unit, not even an admin.
        frozenset({"stakeholder"}),
        _ticks("business_signoff"),
    ),
    "tick data_feasibility": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "criteria/data_feasibility_confirmed/"),
        lambda ctx: {},
        frozenset(MANAGERS | TEAM),
        _ticks("data_feasibility_confirmed"),
    ),
    "decide hold": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "decisions/"),
        lambda ctx: {"decision": "hold", "rationale": "Budget freeze"},
        frozenset(MANAGERS),
        lambda ctx: GateDecision.objects.filter(initiative=ctx.state).count(),
    ),
    "hand over": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "handover/"),
        lambda ctx: {"to": ctx.fixture("other_pm").pk, "reason": "Leave"},
        frozenset(MANAGERS),
        lambda ctx: Handover.objects.filter(initiative=ctx.state).count(),
        form_page=True,
    ),
    "add member": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, "team/"),
        lambda ctx: {"user": ctx.fixture("devops").pk, "role": "devops_engineer"},
        frozenset(MANAGERS),
        _active_members,
    ),
    "remove member": Action(
        "biz_initiative",
        lambda ctx: _url(ctx, f"team/{_engineer_membership(ctx)}/remove/"),
        lambda ctx: {},
        frozenset(MANAGERS),
        _active_members,
    ),
    "add iteration": Action(
        "dev_initiative",
        lambda ctx: _url(ctx, "iterations/"),
        lambda ctx: {"tried": "Gradient boosting", "happened_on": timezone.localdate()},
        frozenset(MANAGERS | TEAM),
        lambda ctx: Iteration.objects.filter(initiative=ctx.state).count(),
    ),
    "give feedback": Action(
        "dev_with_iteration",
        lambda ctx: _url(ctx, "iterations/1/feedback/"),
        lambda ctx: {"business_feedback": "Fewer false alarms, please."},
        frozenset(MANAGERS | {"stakeholder"}),
        lambda ctx: Iteration.objects.get(initiative=ctx.state, number=1).business_feedback,
    ),
    "define KPI": Action(
        "dev_initiative",
        lambda ctx: _url(ctx, "kpis/"),
        lambda ctx: {"name": "Chargebacks", "direction": "lower", "target": "5"},
        frozenset(MANAGERS | {"engineer_on_team"}),
        lambda ctx: KPI.objects.filter(initiative=ctx.state).count(),
    ),
    "edit KPI": Action(
        "dev_initiative",
        lambda ctx: f"/kpis/{_kpi(ctx).pk}/edit/",
        lambda ctx: {"name": "Fraud caught", "unit": "%", "direction": "higher", "target": "95"},
        frozenset(MANAGERS | {"engineer_on_team"}),
        lambda ctx: _kpi(ctx).target,
        form_page=True,
    ),
    "remove KPI": Action(
        "ready_initiative",  # KPIs are removed in Biz
        lambda ctx: f"/kpis/{_kpi(ctx).pk}/remove/",
        lambda ctx: {},
        frozenset(MANAGERS | {"engineer_on_team"}),
        lambda ctx: KPI.objects.filter(initiative=ctx.state).count(),
        form_page=True,
    ),
    "ask engineer": Action(
        "dev_initiative",
        lambda ctx: _url(ctx, "criteria/kpi_jobs_trial_passed/ask/"),
        lambda ctx: {"engineer": ctx.fixture("engineer").pk, "about": _kpi(ctx).pk},
        frozenset(MANAGERS),
        lambda ctx: Alert.objects.filter(kind="job_request").count(),
    ),
    "register job": Action(
        "dev_initiative",
        lambda ctx: f"/ops/kpis/{_kpi(ctx).pk}/job/",
        lambda ctx: {
            "schedule_kind": "interval",
            "interval_seconds": 600,
            "source_kind": "python",
            "calculation": "portfolio.initiatives_in_ops",
            "timeout_seconds": 30,
            "max_retries": 2,
            "enabled": "on",
        },
        frozenset(OPERATORS),
        lambda ctx: Job.objects.filter(kpi__initiative=ctx.state).count(),
        form_page=True,
    ),
    "edit job": Action(
        "ops_initiative",
        lambda ctx: f"/ops/jobs/{_job(ctx).pk}/",
        _job_form,
        frozenset(OPERATORS),
        lambda ctx: _job(ctx).timeout_seconds,
    ),
    "toggle job": Action(
        "ops_initiative",
        lambda ctx: f"/ops/jobs/{_job(ctx).pk}/toggle/",
        lambda ctx: {},
        frozenset(OPERATORS),
        lambda ctx: _job(ctx).enabled,
    ),
    "run now": Action(
        "ops_initiative",
        lambda ctx: f"/ops/jobs/{_job(ctx).pk}/runs/",
        lambda ctx: {"trigger": "manual"},
        # The operators, and the accountable PM ("run now").
        frozenset(OPERATORS | {"accountable_pm"}),
        lambda ctx: Run.objects.filter(job__kpi__initiative=ctx.state).count(),
    ),
}


@pytest.fixture
def dev_with_iteration(dev_initiative: Initiative, pm: Any) -> Initiative:
    initiative_services.iteration_add(initiative=dev_initiative, user=pm, tried="Baseline")
    return dev_initiative


def expected(action: Action, role: str) -> str:
    if role == "anonymous":
        return "login"
    return "allowed" if role in action.allowed else "refused"


CASES = [
    pytest.param(name, role, id=f"{name}-{role}-{expected(action, role)}")
    for name, action in ACTIONS.items()
    for role in ROLES
]


@pytest.mark.parametrize(("action_name", "role"), CASES)
def test_page_permission_matrix(
    request: pytest.FixtureRequest, everyone: Any, unit: Any, action_name: str, role: str
) -> None:
    action = ACTIONS[action_name]
    state = request.getfixturevalue(action.state) if action.state else None
    ctx = Context(state=state, actor=role, request=request)
    client = Client()
    if role != "anonymous":
        client.force_login(request.getfixturevalue(USERS[role]))
    url, data = action.url(ctx), action.data(ctx)
    assert resolve(url).url_name == ACTION_PAGES[action_name]
    before = action.probe(ctx)
    outcome = expected(action, role)

    if outcome == "login":
        response = client.post(url, data)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    elif outcome == "refused":
        for extra in ({}, HTMX):
            response = client.post(url, data, **extra)
            assert response.status_code == 403, (extra, response.content[:500])
            assert FORBIDDEN in response.content.decode()
        if action.form_page:
            assert client.get(url).status_code == 403
    else:
        if action.form_page:
            assert client.get(url).status_code == 200
        response = client.post(url, data)
        assert response.status_code == 302, response.content.decode()[:3000]
        assert not response["Location"].startswith("/accounts/login/")

    after = action.probe(ctx)
    if outcome == "allowed":
        assert after != before, f"{action_name} by {role} was allowed but wrote nothing"
    else:
        assert after == before, f"{action_name} by {role} was refused but changed something"


# Pages that only read (their access is walked in tests/test_url_access.py).
READ_ONLY_PAGES = {
    "home",
    "board",
    "board-column",
    "archive",
    "initiative-detail",
    "initiative-kpis",
    "dashboards",
    "kpi-overview",
    "unit-dashboard",
    "kpi-chart",
    "kpi-csv",
    "ops",
    "run-status",
    "schedule-preview",
    "job-schema",  # GET only; who may read it: tests/jobs/test_schema_browser.py
    "alerts",
    "search",
}
# The URL name of each action's page.
ACTION_PAGES = {
    "create initiative": "initiative-create",
    "edit initiative": "initiative-edit",
    "tick business_signoff": "criterion-tick",
    "tick data_feasibility": "criterion-tick",
    "decide hold": "decide",
    "hand over": "hand-over",
    "add member": "member-add",
    "remove member": "member-remove",
    "add iteration": "iteration-add",
    "give feedback": "iteration-feedback",
    "define KPI": "kpi-add",
    "edit KPI": "kpi-edit",
    "remove KPI": "kpi-remove",
    "ask engineer": "criterion-ask",
    "register job": "job-create",
    "edit job": "job-detail",
    "toggle job": "job-toggle",
    "run now": "run-start",
}


def test_the_matrix_covers_every_write_page_of_the_project() -> None:
    """A new page that writes fails this until its action is in the matrix."""
    from tests.test_url_access import PUBLIC, all_routes

    pages = {
        route.name
        for route in all_routes()
        if not route.namespace and not route.name.startswith("api-") and route.name not in PUBLIC
    }
    assert set(ACTION_PAGES) == set(ACTIONS)
    assert pages - READ_ONLY_PAGES == set(ACTION_PAGES.values())
    assert len(CASES) == len(ACTIONS) * len(ROLES)
