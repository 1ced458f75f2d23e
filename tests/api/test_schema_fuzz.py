"""Property-based run of every API operation against the live OpenAPI schema (schemathesis).

The schema is loaded from the WSGI application, the demo data is seeded once per module in a
transaction that is rolled back at the end, and every operation runs in its own savepoint (the
`django_db` mark), so one operation's writes never leak into the next. The calls go through
the WSGI application in-process: they share the test's database connection and transaction,
so the on-commit callbacks that enqueue KPI runs are never executed and no broker is reached.

Checks: no 5xx for any input, and documented responses match their content type and schema
(as admin and as pm); separately, every status code the API answers with is documented (as
admin). Path parameters and references in bodies are steered towards existing demo objects
for part of the examples, so the services behind the views are reached and not only the
404/400 branches. Generation is derandomized: a failure reproduces run after run.
"""

from __future__ import annotations

import os
import traceback
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from cryptography.fernet import Fernet
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bizdevops.wsgi import application
from tests.helpers import clear_cache

# Small for `make test`; API_FUZZ_EXAMPLES=200 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
# What a response must satisfy for any input. The content type and the body are only checked
# against documented responses: for an undocumented status code these two checks pass.
RESPONSE_CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
# And every status code the API answers with must be documented.
ALL_CHECKS = [*RESPONSE_CHECKS, status_code_conformance]

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(
    modes=list(GenerationMode),  # valid and invalid inputs
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    with_security_parameters=False,  # the token header is set by the test
)
# Coverage: deterministic boundary and invalid values per parameter (a few seconds per
# operation); fuzzing: MAX_EXAMPLES random cases. No stateful phase (no links in the schema).
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# Demo data, once per module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The demo data, seeded in a transaction rolled back after the module; what the tests
    steer generated values to, and a token per demo user."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from bizdevops.demo import seed as demo_data
    from initiatives.models import Initiative, Membership
    from jobs.models import DataSource, Job, Run
    from kpis.models import KPI
    from phases.models import Criterion

    User = get_user_model()
    values = {
        "DEMO_WAREHOUSE_PATH": tmp_path_factory.mktemp("fuzz") / "warehouse.sqlite3",
        "DATA_SOURCE_KEY": Fernet.generate_key().decode(),
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    }
    with django_db_blocker.unblock(), override_settings(**values):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            demo_data.seed([])
            users = {
                name: Token.objects.get_or_create(user=User.objects.get(username=name))[0]
                for name in ("admin", "pm")
            }
            yield {
                "settings": values,
                "tokens": {name: token.key for name, token in users.items()},
                "pools": {
                    "key": [i.key for i in Initiative.objects.order_by("pk")],
                    "kpis": list(KPI.objects.order_by("pk").values_list("pk", flat=True)),
                    "jobs": list(Job.objects.order_by("pk").values_list("pk", flat=True)),
                    "runs": list(Run.objects.order_by("pk").values_list("pk", flat=True)),
                    "member_id": list(
                        Membership.objects.filter(left_at__isnull=True)
                        .order_by("pk")
                        .values_list("pk", flat=True)
                    ),
                    "code": list(Criterion.objects.order_by("pk").values_list("code", flat=True)),
                    "business_unit": list(
                        Initiative.objects.values_list("business_unit_id", flat=True).distinct()
                    ),
                    "data_source": list(DataSource.objects.values_list("pk", flat=True)),
                    "user": ["pm", "pm2", "scientist", "engineer", "devops", "stakeholder"],
                    "password": [demo_data.DEMO_PASSWORD],
                },
            }
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _same_settings_as_the_seed(demo: dict[str, Any], settings: Any) -> None:
    # tests/conftest.py gives each test a new data source key and warehouse path; the seeded
    # data source was encrypted with the module's key.
    for name, value in demo["settings"].items():
        setattr(settings, name, value)


@pytest.fixture(autouse=True)
def _in_process_requests() -> Iterator[list[str]]:
    """What Django's test client does: the WSGI handler must not close the test's connection
    at the end of a request (it would on PostgreSQL: autocommit differs inside the test
    transaction). Also records the traceback of every unhandled view exception."""
    tracebacks: list[str] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        tracebacks.append(traceback.format_exc())

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(record)
    try:
        yield tracebacks
    finally:
        got_request_exception.disconnect(record)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing is sent to Celery while the fuzzing runs (on-commit callbacks never run)."""
    from celery import Celery
    from celery.app.task import Task

    sent: list[str] = []
    monkeypatch.setattr(Task, "apply_async", lambda task, *a, **k: sent.append(task.name))
    monkeypatch.setattr(Celery, "send_task", lambda app, name, *a, **k: sent.append(name))
    yield
    assert sent == [], "a request reached the broker"


# Steering generated values towards existing objects ------------------------------------------


def _pick(value: Any, pool: list[Any]) -> Any:
    """For about half of the generated values (chosen deterministically from the value), an
    existing object instead; the rest stays random (404 and 400 paths)."""
    digest = zlib.crc32(repr(value).encode())
    if not pool or digest % 2:
        return value
    return pool[(digest // 2) % len(pool)]


def _id_pool(path: str) -> str:
    if path.startswith("/api/v1/kpis/"):
        return "kpis"
    if path.startswith("/api/v1/jobs/"):
        return "jobs"
    return "runs"


BODY_REFERENCES = {
    "username": "user",
    "password": "password",
    "kpi": "kpis",
    "initiative": "key",
    "business_unit": "business_unit",
    "data_source": "data_source",
    "user": "user",
    "to": "user",
}


def _declared_properties(case: Any) -> set[str] | None:
    """The properties the JSON request body schema declares (None: not an object schema)."""
    raw = schema.raw_schema
    operation = raw["paths"].get(case.operation.path, {}).get(case.operation.method.lower(), {})
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    definition = body.get("schema", {})
    if "$ref" in definition:
        definition = raw["components"]["schemas"].get(definition["$ref"].rsplit("/", 1)[1], {})
    properties = definition.get("properties")
    return set(properties) if isinstance(properties, dict) else None


def _steer(case: Any, pools: dict[str, list[Any]]) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        pool = _id_pool(case.operation.path) if name == "id" else name
        case.path_parameters[name] = _pick(value, pools.get(pool, []))
    if isinstance(case.body, dict):
        for name, pool in BODY_REFERENCES.items():
            if name in case.body:
                case.body[name] = _pick(case.body[name], pools[pool])
        # The schemas allow properties they do not declare (see test_docs_and_health), the
        # serializers refuse them: without them in part of the cases, the services get reached.
        declared = _declared_properties(case)
        if declared is not None and _pick(case.body, [True]) is True:
            for name in set(case.body) - declared:
                del case.body[name]


def _run(
    case: Any, demo: dict[str, Any], username: str, tracebacks: list[str], checks: list[Any]
) -> None:
    _steer(case, demo["pools"])
    clear_cache()  # the throttles count in the cache: the fuzzing must not hit a 429
    headers = {"Authorization": f"Token {demo['tokens'][username]}"}
    try:
        case.call_and_validate(headers=headers, checks=checks)
    except BaseException:
        # The server-side traceback of a 500, for the report.
        for trace in tracebacks:
            print(trace)
        raise
    finally:
        tracebacks.clear()


# The runs -------------------------------------------------------------------------------------
# Split so that an undocumented 4xx (found on the first example) does not hide a 500 or a
# response body that contradicts its schema.


@pytest.mark.django_db
@schema.parametrize()
@HYPOTHESIS
def test_responses_as_admin(
    case: Any, demo: dict[str, Any], _in_process_requests: list[str]
) -> None:
    _run(case, demo, "admin", _in_process_requests, RESPONSE_CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@HYPOTHESIS
def test_responses_as_pm(case: Any, demo: dict[str, Any], _in_process_requests: list[str]) -> None:
    _run(case, demo, "pm", _in_process_requests, RESPONSE_CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@HYPOTHESIS
def test_status_codes_are_documented(
    case: Any, demo: dict[str, Any], _in_process_requests: list[str]
) -> None:
    _run(case, demo, "admin", _in_process_requests, ALL_CHECKS)


# Out-of-range numbers: what the fuzzing found (a 500) and its neighbours, as fixed requests
# that do not depend on the number of examples.
HUGE = "99999999999999999999"  # > 2**63
OUT_OF_RANGE = [
    f"/api/v1/initiatives/?business_unit={HUGE}",
    "/api/v1/initiatives/?business_unit=-2.955119754760106e%2B217",  # found by the fuzzing
    f"/api/v1/initiatives/?page={HUGE}",
    f"/api/v1/initiatives/?page_size={HUGE}",
    f"/api/v1/jobs/?kpi={HUGE}",
    f"/api/v1/jobs/?initiative=BDO-{HUGE[:15]}",
    f"/api/v1/kpis/?initiative=BDO-{HUGE[:15]}",
    f"/api/v1/kpis/{HUGE}/",
    f"/api/v1/kpis/{HUGE}/measurements/",
    f"/api/v1/jobs/{HUGE}/",
    f"/api/v1/jobs/{HUGE}/runs/",
    f"/api/v1/runs/{HUGE}/",
    f"/api/v1/initiatives/BDO-{HUGE}/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", OUT_OF_RANGE)
def test_out_of_range_numbers_are_refused_not_a_server_error(
    demo: dict[str, Any], _in_process_requests: list[str], url: str
) -> None:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {demo['tokens']['admin']}")
    response = client.get(url)
    assert response.status_code in (200, 400, 404), "".join(_in_process_requests)
    if response.status_code != 200:
        assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.django_db
def test_running_a_job_enqueues_only_on_commit(
    demo: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    """POST /jobs/{id}/run/ inside the test transaction registers the enqueue for after the
    commit and does not execute it: the fuzzing never reaches a broker."""
    from django.test import Client

    from bizdevops.models import OutboxMessage
    from jobs import services
    from jobs.models import Job, Run

    sent: list[Any] = []
    monkeypatch.setattr("bizdevops.outbox.send", lambda *message: sent.append(message))
    job = (
        Job.objects.filter(kpi__initiative__phase="ops", kpi__initiative__status="active")
        .order_by("pk")
        .first()
    )
    assert job is not None
    client = Client(HTTP_AUTHORIZATION=f"Token {demo['tokens']['admin']}")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            f"/api/v1/jobs/{job.pk}/run/", {"trigger": "manual"}, content_type="application/json"
        )
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["run"])
    assert run.state == "queued"
    assert len(callbacks) == 1  # the enqueue, waiting for a commit that never comes
    assert sent == []
    callbacks[0]()  # what a commit would do: send the run to the workers
    # (with the other messages this test transaction wrote to the outbox: the demo's)
    assert (services.EXECUTE_RUN, (run.pk,)) in [(name, args) for name, args, _ in sent]
    assert not OutboxMessage.objects.filter(task=services.EXECUTE_RUN, args=[run.pk]).exists()
