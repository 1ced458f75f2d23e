"""Every URL of the project, walked by people who must not see another business unit's
objects: a business stakeholder of another unit, and a signed-in user with no role.

The URLconf is resolved, every pattern is filled with the objects of one initiative in Ops
(its KPI, job, run, team member, iteration, unit) and requested with every method. A URL that
names an object answers 404 (405 for a method the view does not take, which says nothing
about the object); a page without an object answers 200 (lists), 403 (role-gated) or its own
public answer; the admin redirects to its login. No answer contains any data of the hidden
initiative. A URL this test does not know how to fill fails it: add the URL here, with its
access rule, when you add it to the project.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import Initiative, TeamRole
from jobs import services as job_services
from jobs.models import DataSource, Job, Run, RunState, Trigger
from kpis import services as kpi_services
from tests.factories import (
    BusinessUnitFactory,
    decide,
    make_initiative,
    pass_biz_gate,
    pass_dev_gate,
)

pytestmark = pytest.mark.django_db

# What must never reach an outsider: the hidden initiative's texts and numbers.
MARKERS = {
    "title": "Secret merger scoring",
    "unit": "Mergers and Acquisitions",
    "problem": "Which targets hide liabilities",
    "kpi": "Hidden synergy rate",
    "kpi unit": "zorkmids",
    "sql": "4242 AS hidden_value",
    "run error": "hidden-warehouse-table-gone",
    "value": "4242.5",
    "iteration": "Tried a hidden gradient model",
}

METHODS = ("get", "post", "put", "patch", "delete")
# Pages without an object, and what an outsider gets there.
LISTS = {  # 200, without the hidden data
    "home",
    "board",
    "board-column",
    "archive",
    "ops",
    "dashboards",
    "kpi-overview",  # filtered to the visible KPIs: tests/kpis/test_overview.py
    "alerts",
    "schedule-preview",
    "search",  # what it finds for outsiders: tests/bizdevops/test_search.py
    "api-business-units",
    "api-initiatives",
    "api-kpis",
    "api-jobs",
    "api-search",
}
ROLE_GATED = {"initiative-create", "api-data-sources"}  # 403 for both outsiders
PUBLIC = {  # not about any initiative: their own rules (tested elsewhere)
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "healthz",
    "api-token",
    "preferences",  # the user's own: tests/bizdevops/test_preferences.py
    "api-me",
    "api-schema",
    "api-docs",
    "api-redoc",
}


@dataclass(frozen=True)
class Route:
    name: str
    namespace: str
    parts: list[tuple[str, Any]]  # ("text", str) or ("param", name)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}:{self.name}" if self.namespace else self.name

    @property
    def params(self) -> list[str]:
        return [value for kind, value in self.parts if kind == "param"]


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def _split(pattern: str) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = []
    position = 0
    for match in _PARAM.finditer(pattern):
        parts.append(("text", pattern[position : match.start()]))
        parts.append(("param", match.group(1) or match.group(2)))
        position = match.end()
    parts.append(("text", pattern[position:]))
    return [
        (kind, value.lstrip("^").rstrip("$") if kind == "text" else value) for kind, value in parts
    ]


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry, pattern, inner)
        elif isinstance(entry, URLPattern):
            yield Route(entry.name or entry.lookup_str, namespace, _split(pattern))


def all_routes() -> list[Route]:
    return list(_walk(get_resolver()))


@dataclass
class Hidden:
    initiative: Initiative
    kpi: Any
    job: Job
    run: Run
    source: DataSource
    membership_id: int


@pytest.fixture
def hidden(pm: Any, stakeholder: Any, scientist: Any, engineer: Any, admin_user: Any) -> Hidden:
    """An initiative in Ops of the unit 'Mergers and Acquisitions', with a KPI, a SQL job, a
    failed run and a value: everything an outsider must not see."""
    unit = BusinessUnitFactory(name=MARKERS["unit"])
    unit.stakeholders.add(stakeholder)
    initiative = make_initiative(pm, unit, title=MARKERS["title"])
    initiative = pass_biz_gate(
        initiative, pm=pm, stakeholder=stakeholder, scientist=scientist, engineer=engineer
    )
    initiative_services.initiative_update(
        initiative=initiative, user=pm, business_problem=MARKERS["problem"]
    )
    kpi = initiative.kpis.get()
    kpi_services.kpi_update(kpi=kpi, user=pm, name=MARKERS["kpi"], unit=MARKERS["kpi unit"])
    initiative = decide(initiative, "go", pm)
    initiative_services.iteration_add(
        initiative=initiative, user=pm, tried=MARKERS["iteration"], business_feedback="Fine."
    )
    pass_dev_gate(initiative, pm=pm, stakeholder=stakeholder, engineer=engineer)
    initiative = decide(initiative, "go", pm)
    source = job_services.data_source_save(
        user=admin_user, name="Deal room", kind="database", url="sqlite:////nonexistent.db"
    )
    job = job_services.job_update(
        job=Job.objects.get(kpi=kpi),
        user=engineer,
        source_kind="sql",
        data_source=source,
        sql=f"SELECT {MARKERS['sql']}",
    )
    run = Run.objects.create(
        job=job,
        scheduled_for=timezone.now(),
        trigger=Trigger.MANUAL,
        state=RunState.FAILED,
        value=float(MARKERS["value"]),
        error=MARKERS["run error"],
    )
    kpi_services.measurements_push(
        kpi=kpi, user=engineer, items=[(timezone.now(), float(MARKERS["value"]))]
    )
    membership = initiative.memberships.get(role=TeamRole.DATA_ENGINEER, left_at__isnull=True)
    return Hidden(initiative, kpi, job, run, source, membership.pk)


def _pk_of(route: Route, hidden: Hidden) -> Any:
    name = route.name
    if name.startswith("api-measurements") or name.startswith("api-kpi"):
        return hidden.kpi.pk
    if name.startswith("api-job"):
        return hidden.job.pk
    if name.startswith("api-run"):
        return hidden.run.pk
    raise LookupError(f"{route.full_name}: what is its <pk>? Add it to tests/test_url_access.py.")


def _value(route: Route, param: str, hidden: Hidden) -> str:
    initiative = hidden.initiative
    if route.namespace == "admin":
        model = re.match(r"(\w+?)_(\w+?)_", route.name)
        values = {
            "app_label": "initiatives",
            "content_type_id": ContentType.objects.get_for_model(Initiative).pk,
            "object_id": initiative.pk,
            "uidb64": "MQ",
            "token": "x",
        }
        if param == "object_id" and model:
            return str(_admin_object(model.group(1), model.group(2), hidden))
        return str(values.get(param, 1))
    values = {
        "key": initiative.key,
        "code": "results_accepted",
        "membership_id": hidden.membership_id,
        "member_id": hidden.membership_id,
        "number": initiative.iterations.order_by("number").first().number,
        "kpi_id": hidden.kpi.pk,
        "job_id": hidden.job.pk,
        "run_id": hidden.run.pk,
        "unit_id": initiative.business_unit_id,
        "uidb64": "MQ",
        "token": "x",
    }
    if param == "pk":
        return str(_pk_of(route, hidden))
    if param not in values:
        raise LookupError(
            f"{route.full_name}: what is its <{param}>? Add it to tests/test_url_access.py."
        )
    return str(values[param])


def _admin_object(app: str, model: str, hidden: Hidden) -> int:
    objects = {
        "initiative": hidden.initiative.pk,
        "kpi": hidden.kpi.pk,
        "job": hidden.job.pk,
        "run": hidden.run.pk,
        "datasource": hidden.source.pk,
        "membership": hidden.membership_id,
    }
    return objects.get(model, 1)


def url_of(route: Route, hidden: Hidden) -> str:
    return "/" + "".join(
        value if kind == "text" else _value(route, value, hidden) for kind, value in route.parts
    )


@pytest.fixture(params=["stakeholder of another unit", "user with no role"])
def outsider(request: pytest.FixtureRequest, make_user: Any) -> Any:
    if request.param == "user with no role":
        return make_user(username="nobody")
    person = make_user(Role.BUSINESS_STAKEHOLDER, username="retail-lead")
    own = BusinessUnitFactory(name="Retail")
    own.stakeholders.add(person)
    return person


def _leaks(content: str) -> list[str]:
    return [what for what, text in MARKERS.items() if text in content]


def test_every_url_hides_other_units_objects(outsider: Any, hidden: Hidden) -> None:
    client = Client()
    problems: list[str] = []
    routes = all_routes()
    assert len(routes) > 50, "the URLconf was not walked"
    for route in routes:
        if route.full_name in PUBLIC or route.name in PUBLIC:
            continue
        url = url_of(route, hidden)
        statuses = {}
        for method in METHODS:
            client.force_login(outsider)
            response = getattr(client, method)(url)
            statuses[method] = response.status_code
            body = b"".join(response.streaming_content) if response.streaming else response.content
            leaked = _leaks(body.decode("utf-8", "replace"))
            if leaked:
                problems.append(f"{method.upper()} {url} ({route.full_name}) shows {leaked}")
        answers = set(statuses.values())
        if route.namespace == "admin":
            expected = {302}
        elif route.params:
            expected = {404, 405}
            if 404 not in answers:
                problems.append(f"{url} ({route.full_name}) never answers 404: {statuses}")
        elif route.name in LISTS:
            # A list answers (a stakeholder with one unit is sent on to it: 302); a write to a
            # list (create) is refused for input or role before it reaches any object.
            expected = {200, 302, 400, 403, 405}
            if statuses["get"] not in (200, 302):
                problems.append(f"GET {url} ({route.full_name}) is {statuses['get']}, not 200")
        elif route.name in ROLE_GATED:
            expected = {403, 405}
        else:
            problems.append(f"{url} ({route.full_name}): add its access rule to this test")
            continue
        if not answers <= expected:
            problems.append(f"{url} ({route.full_name}) answers {statuses}, expected {expected}")
    assert not problems, "\n".join(problems)


def test_objects_named_in_a_request_body_are_as_unknown_as_missing_ones(
    outsider: Any, hidden: Hidden
) -> None:
    """A body that names another unit's KPI or initiative gets the answer a missing one gets
    (never a 403 that confirms it exists)."""
    client = Client()
    client.force_login(outsider)

    def post(path: str, body: dict[str, Any]) -> tuple[int, str]:
        response = client.post(path, body, content_type="application/json")
        return response.status_code, response.content.decode()

    missing = 10**9
    job = {"schedule_kind": "interval", "interval_seconds": 600, "source_kind": "python"}
    hidden_answer = post("/api/v1/jobs/", {**job, "kpi": hidden.kpi.pk})
    missing_answer = post("/api/v1/jobs/", {**job, "kpi": missing})
    assert hidden_answer[0] == missing_answer[0] == 400
    assert hidden_answer[1].replace(str(hidden.kpi.pk), "N") == missing_answer[1].replace(
        str(missing), "N"
    )
    kpi = {"name": "Probe", "initiative": hidden.initiative.key}
    assert (
        post("/api/v1/kpis/", kpi)[0]
        == post("/api/v1/kpis/", {**kpi, "initiative": "BDO-999999"})[0]
        == 404
    )
    assert not _leaks(hidden_answer[1])
