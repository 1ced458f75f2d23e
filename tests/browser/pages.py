"""Every page of the web UI and who visits it, for the browser tests that load them all
(tests/browser/test_responsive.py at 390 px, tests/browser/test_axe.py with axe-core).

`portfolio()` builds realistic data through the services: an initiative in each phase (and
one on hold, one killed), long titles, story text with long words and URLs, KPIs with a
month of values, jobs with runs (a failed one with a long error), alerts. `SCREENS` is the
table of pages: a name, the roles that visit it and how to build its URL from the portfolio.
Add a row when you add a page; `uncovered_routes()` names every URL pattern of the web UI
that is neither visited here nor listed in `NOT_PAGES` (tests/browser/test_responsive.py
fails on it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, TeamRole
from jobs import services as job_services
from jobs.models import Job, Run, RunState, Trigger
from kpis import services as kpi_services
from kpis.models import KPI
from notifications.models import Alert
from phases.models import Decision
from tests.factories import (
    BusinessUnitFactory,
    UserFactory,
    decide,
    make_initiative,
    pass_biz_gate,
    pass_dev_gate,
)

# The roles of the issue, each a user of tests/conftest.py's names (password "pw").
ROLES = {
    "pm": "pm",
    "data scientist": "scientist",
    "data engineer": "engineer",
    "devops engineer": "devops",
    "business stakeholder": "stakeholder",
    "admin": "admin",
}
SIGNED_IN = frozenset(ROLES)
ANONYMOUS = "anonymous"
MANAGERS = frozenset({"pm", "admin"})
OPERATORS = frozenset({"data engineer", "devops engineer", "admin"})

# Texts that do not fit a phone unless they wrap.
LONG_WORD = "Kreditausfallwahrscheinlichkeitsberechnungsverfahren"
LONG_URL = (
    "https://wiki.example.com/display/RISK/Credit-risk+scoring+for+small+businesses"
    "?pageId=123456789012345678901234567890&version=42#data-feasibility-appendix"
)
LONG_TITLE = (
    "Credit-risk scoring for small businesses applying for revolving credit lines, "
    f"with explainable {LONG_WORD}"
)
LONG_STORY = (
    "Small businesses wait eleven days for a credit decision and a third of them go "
    f"elsewhere. See {LONG_URL} for the figures. The {LONG_WORD} of 2019 is no longer used."
)
LONG_KPI = "Share of applications decided within one working day (automated and manual)"
LONG_ERROR = (
    'relation "warehouse.credit_applications_daily_snapshot_2026_partitioned" does not '
    "exist\nLINE 1: SELECT avg(decision_hours) FROM warehouse.credit_applications_daily_"
    "snapshot_2026_partitioned WHERE decided_at >= now() - interval '1 day'\n" + "x" * 160
)
LONG_SQL = (
    "SELECT count(*) FILTER (WHERE decided_at - submitted_at <= interval '1 day') * 100.0 "
    "/ nullif(count(*), 0) FROM warehouse.credit_applications_daily_snapshot_2026_partitioned"
    "_by_business_unit_and_region WHERE submitted_at >= now() - interval '30 days'"
)


@dataclass
class Portfolio:
    users: dict[str, Any]  # role -> user
    unit: BusinessUnit
    other_unit: BusinessUnit
    biz: Initiative
    dev: Initiative
    ops: Initiative
    held: Initiative
    killed: Initiative
    ops_kpi: KPI
    dev_kpi: KPI  # in Dev, without a job yet
    biz_kpi: KPI  # in Biz: can be edited and removed
    job: Job
    failed_run: Run


def _user(role: Role | None, username: str, **kwargs: Any) -> Any:
    full = {"first_name": username.capitalize(), "last_name": "Longname-Example"}
    return UserFactory(username=username, roles=[role] if role else [], **full, **kwargs)


def portfolio() -> Portfolio:
    """The data every page is visited with (needs the database; call it inside a test)."""
    users = {
        "pm": _user(Role.PROGRAM_MANAGER, "pm"),
        "data scientist": _user(Role.DATA_SCIENTIST, "scientist"),
        "data engineer": _user(Role.DATA_ENGINEER, "engineer"),
        "devops engineer": _user(Role.DEVOPS_ENGINEER, "devops"),
        "business stakeholder": _user(Role.BUSINESS_STAKEHOLDER, "stakeholder"),
        "admin": _user(None, "admin", is_superuser=True, is_staff=True),
    }
    _user(Role.PROGRAM_MANAGER, "pm2")  # someone to hand over to
    pm, scientist, engineer, devops, stakeholder, admin = users.values()
    unit = BusinessUnitFactory(name="Small-business lending", description=LONG_STORY)
    other_unit = BusinessUnitFactory(name="Retail cards", description="Cards for consumers.")
    for u in (unit, other_unit):
        u.stakeholders.add(stakeholder)

    def through_biz(title: str, in_unit: BusinessUnit = unit) -> Initiative:
        initiative = make_initiative(pm, in_unit, title=title)
        initiative = pass_biz_gate(
            initiative, pm=pm, stakeholder=stakeholder, scientist=scientist, engineer=engineer
        )
        initiative_services.member_add(
            initiative=initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm
        )
        initiative_services.initiative_update(
            initiative=initiative, user=pm, business_problem=LONG_STORY, use_case=LONG_URL
        )
        return initiative

    biz = through_biz(LONG_TITLE)
    kpi_services.kpi_define(
        initiative=biz,
        user=pm,
        name=LONG_KPI,
        unit="%",
        target=80,
        warning_threshold=70,
        critical_threshold=50,
        description=LONG_STORY,
    )
    dev = decide(through_biz("Churn forecast for merchants with a seasonal business"), "go", pm)
    initiative_services.iteration_add(
        initiative=dev, user=pm, tried=LONG_STORY, business_feedback=f"Fine, but {LONG_WORD}."
    )
    initiative_services.iteration_add(initiative=dev, user=pm, tried="Gradient boosting.")

    ops = through_biz("Card-fraud detection in real time", other_unit)
    kpi_services.kpi_define(
        initiative=ops,
        user=pm,
        name=LONG_KPI,
        unit="hours",
        direction="lower",
        target=24,
        warning_threshold=36,
        critical_threshold=48,
    )
    ops = decide(ops, "go", pm)
    pass_dev_gate(ops, pm=pm, stakeholder=stakeholder, engineer=engineer)
    ops = decide(ops, "go", pm)
    ops_kpi = ops.kpis.get(name="Fraud caught")
    source = job_services.data_source_save(
        user=admin,
        name="Lending warehouse (read-only replica)",
        kind="database",
        url="sqlite:////nonexistent-warehouse.db",
    )
    job = job_services.job_update(
        job=Job.objects.get(kpi=ops_kpi),
        user=engineer,
        source_kind="sql",
        data_source=source,
        sql=LONG_SQL,
    )
    now = timezone.now().replace(microsecond=0)
    for kpi, base in ((ops_kpi, 88.0), (ops.kpis.get(name=LONG_KPI), 30.0)):
        items = [(now - dt.timedelta(hours=6 * n), base + (n % 7) - 3.0) for n in range(120)]
        kpi_services.measurements_push(kpi=kpi, user=engineer, items=items)
    failed_run = Run.objects.create(
        job=job,
        scheduled_for=now - dt.timedelta(minutes=5),
        trigger=Trigger.SCHEDULE,
        state=RunState.FAILED,
        attempt=3,
        error=LONG_ERROR,
    )
    for n in range(1, 4):
        Run.objects.create(
            job=job,
            scheduled_for=now - dt.timedelta(minutes=5 + 5 * n),
            trigger=Trigger.SCHEDULE,
            state=RunState.SUCCEEDED,
            value=88.123456 + n,
        )

    held = decide(make_initiative(pm, unit, title="Waiting for the budget"), Decision.HOLD, pm)
    killed = decide(make_initiative(pm, unit, title=f"Abandoned: {LONG_WORD}"), Decision.KILL, pm)

    alert = Alert.objects.create(
        kind="kpi_status",
        subject=ops.key,
        url=f"/initiatives/{ops.key}/dashboard/",
        detail_label="job runs",
        detail_url=f"/ops/jobs/{job.pk}/",
        from_status="healthy",
        to_status="critical",
        value=42.0,
        message=f"{LONG_KPI} of {ops.key} {ops.title} is critical: 42.00 hours. {LONG_URL}",
    )
    alert.recipients.set([user.pk for user in users.values()])
    return Portfolio(
        users=users,
        unit=unit,
        other_unit=other_unit,
        biz=biz,
        dev=dev,
        ops=ops,
        held=held,
        killed=killed,
        ops_kpi=ops_kpi,
        dev_kpi=dev.kpis.get(name="Fraud caught"),
        biz_kpi=biz.kpis.get(name=LONG_KPI),
        job=job,
        failed_run=failed_run,
    )


@dataclass(frozen=True)
class Screen:
    name: str
    url: Callable[[Portfolio], str]
    roles: frozenset[str] = SIGNED_IN
    # What shows that the page has drawn (a chart, say) before it is measured.
    ready: str = "main h1"
    status: int = 200
    tags: frozenset[str] = field(default_factory=frozenset)  # "dark": also checked dark


def _initiative(which: str, tail: str = "") -> Callable[[Portfolio], str]:
    return lambda p: f"/initiatives/{getattr(p, which).key}/{tail}"


SCREENS: list[Screen] = [
    Screen(
        "sign in", lambda p: "/accounts/login/", frozenset({ANONYMOUS}), tags=frozenset({"dark"})
    ),
    Screen("not found", lambda p: "/no-such-page/", SIGNED_IN | {ANONYMOUS}, status=404),
    Screen(
        "refused (403)",
        lambda p: "/initiatives/new/",
        frozenset({"business stakeholder"}),
        status=403,
    ),
    Screen("my initiatives", lambda p: "/", tags=frozenset({"dark"})),
    Screen("board", lambda p: "/board/", tags=frozenset({"dark"})),
    Screen("board, filtered", lambda p: "/board/?q=credit&mine=true", frozenset({"pm"})),
    Screen("archive", lambda p: "/archive/"),
    Screen("new initiative", lambda p: "/initiatives/new/", MANAGERS),
    Screen("initiative in Biz", _initiative("biz"), tags=frozenset({"dark"})),
    Screen("initiative in Dev", _initiative("dev")),
    Screen("initiative in Ops", _initiative("ops")),
    Screen("initiative on hold", _initiative("held")),
    Screen("initiative killed", _initiative("killed")),
    Screen("edit initiative", _initiative("biz", "edit/"), MANAGERS),
    Screen("hand over", _initiative("biz", "handover/"), MANAGERS),
    Screen(
        "KPI trends",
        _initiative("ops", "dashboard/?range=30d"),
        ready="[data-chart] canvas",
        tags=frozenset({"dark"}),
    ),
    Screen("KPI trends without values", _initiative("biz", "dashboard/")),
    Screen("KPI dashboards", lambda p: "/dashboards/"),
    Screen("unit dashboard", lambda p: f"/dashboards/units/{p.other_unit.pk}/"),
    Screen("unit dashboard, no values", lambda p: f"/dashboards/units/{p.unit.pk}/"),
    Screen("Ops", lambda p: "/ops/", tags=frozenset({"dark"})),
    Screen("register a job", lambda p: f"/ops/kpis/{p.dev_kpi.pk}/job/", OPERATORS),
    Screen("job", lambda p: f"/ops/jobs/{p.job.pk}/", tags=frozenset({"dark"})),
    Screen("my alerts", lambda p: "/alerts/"),
    Screen("preferences", lambda p: "/preferences/"),
    Screen("KPI overview", lambda p: "/kpis/", tags=frozenset({"dark"})),
    Screen("search", lambda p: "/search/?q=credit"),
    Screen("edit a KPI", lambda p: f"/kpis/{p.biz_kpi.pk}/edit/", MANAGERS),
    Screen("remove a KPI", lambda p: f"/kpis/{p.biz_kpi.pk}/remove/", MANAGERS),
    Screen("schema browser", lambda p: f"/ops/kpis/{p.dev_kpi.pk}/schema/", OPERATORS),
]

# URL patterns of the web UI that are not pages of their own, and why. The API (`api-*`) and
# the admin have their own tests (tests/browser/test_csp.py, tests/api/).
NOT_PAGES = {
    "board-column": "htmx fragment of the board (without htmx it redirects to the board)",
    "member-add": "POST only (its form is on the initiative page)",
    "member-remove": "POST only (initiative page)",
    "iteration-add": "POST only (initiative page)",
    "iteration-feedback": "POST only (initiative page)",
    "criterion-tick": "POST only (the gate panel)",
    "decide": "POST only (the gate panel)",
    "criterion-ask": "POST only (the gate panel)",
    "kpi-add": "POST only (initiative page)",
    "kpi-chart": "htmx fragment of the KPI trends page",
    "kpi-csv": "a CSV download",
    "job-toggle": "POST only (job page)",
    "run-start": "POST only (job page)",
    "run-status": "htmx fragment of the job page",
    "schedule-preview": "htmx fragment of the job form",
    "logout": "POST only (the navigation)",
    "healthz": "JSON for load balancers",
    "password_change": "Django's admin-styled page, not linked from the app",
    "password_change_done": "Django's admin-styled page",
    "password_reset": "Django's admin-styled page, not linked from the app",
    "password_reset_done": "Django's admin-styled page",
    "password_reset_confirm": "Django's admin-styled page",
    "password_reset_complete": "Django's admin-styled page",
}


def _route_names(resolver: URLResolver, namespace: str = "") -> list[str]:
    names: list[str] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace or namespace
            names.extend(_route_names(entry, inner))
        elif isinstance(entry, URLPattern) and not namespace:
            names.append(entry.name or entry.lookup_str)
    return names


def web_routes() -> list[str]:
    """The names of the web UI's URL patterns (not the admin's, not the API's)."""
    return [name for name in _route_names(get_resolver()) if not name.startswith("api-")]


def uncovered_routes(data: Portfolio) -> list[str]:
    visited = set()
    for screen in SCREENS:
        with contextlib.suppress(Resolver404):  # the not-found page
            visited.add(resolve(screen.url(data).split("?")[0]).url_name)
    return sorted(set(web_routes()) - visited - set(NOT_PAGES))


def visits(data: Portfolio, tag: str | None = None) -> dict[str, list[tuple[Screen, str]]]:
    """For each role (and anonymous), the screens it visits and their URLs."""
    table: dict[str, list[tuple[Screen, str]]] = {}
    for screen in SCREENS:
        if tag and tag not in screen.tags:
            continue
        for role in sorted(screen.roles):
            table.setdefault(role, []).append((screen, screen.url(data)))
    return table


def session_cookie(user: Any, base_url: str) -> dict[str, Any]:
    """A signed-in session for the browser (the login form itself is tested elsewhere)."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": base_url}
