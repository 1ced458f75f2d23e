"""Data sources (admins; the URL never comes back), jobs, runs."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.utils import timezone

from initiatives.models import TeamRole
from initiatives.services import member_add
from jobs import services as job_services
from jobs.models import DataSource, Job, Run, RunState, Trigger
from kpis import services as kpi_services
from phases.models import Decision
from tests.api.helpers import API, error_of
from tests.factories import decide, make_initiative
from tests.jobs.helpers import postgres_url

pytestmark = pytest.mark.django_db

SECRET_URL = "postgres://reporter:s3cr3t-pa55@db.internal.example.com:5432/warehouse"
HTTP_SECRET_URL = "https://robot:t0ps3cret@api.example.com/v1?api_key=k3y-123"
SECRETS = ("s3cr3t-pa55", "t0ps3cret", "k3y-123", "reporter", "robot")

PYTHON_JOB = {
    "schedule_kind": "interval",
    "interval_seconds": 600,
    "source_kind": "python",
    "calculation": "portfolio.initiatives_in_ops",
}

JOB_FIELDS = {
    "id",
    "kpi",
    "schedule_kind",
    "cron",
    "interval_seconds",
    "source_kind",
    "data_source",
    "sql",
    "http_path",
    "json_path",
    "calculation",
    "timeout_seconds",
    "max_retries",
    "enabled",
    "next_run_at",
    "created_at",
    "updated_at",
}


def assert_no_secret(response) -> None:
    text = response.content.decode()
    for secret in SECRETS:
        assert secret not in text
    assert "url" not in json.dumps(response.json()).replace("display_url", "").replace(
        "url_env", ""
    )


# Data sources


def test_an_admin_creates_a_database_source(api_as, admin_user):
    response = api_as(admin_user).post(
        f"{API}/data-sources/",
        {"name": "Warehouse", "kind": "database", "url": SECRET_URL, "description": "DWH"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    source = DataSource.objects.get(name="Warehouse")
    assert response.json() == {
        "id": source.pk,
        "name": "Warehouse",
        "kind": "database",
        "display_url": "postgres://db.internal.example.com:5432/warehouse",
        "url_env": "",
        "allow_private_addresses": False,
        "description": "DWH",
    }
    assert_no_secret(response)
    # Stored encrypted, not in plain text.
    assert source.url_encrypted
    assert "s3cr3t" not in source.url_encrypted
    assert "s3cr3t" not in source.display_url


@pytest.mark.postgres
def test_a_superuser_database_source_is_refused(api_as, admin_user):
    # READ ONLY does not hold a superuser back (pg_read_file, lo_import, dblink, COPY FROM
    # PROGRAM): the role a PostgreSQL source logs in as is checked before it is saved.
    url = postgres_url(connection.settings_dict)

    response = api_as(admin_user).post(
        f"{API}/data-sources/", {"name": "Admin", "kind": "database", "url": url}, format="json"
    )

    assert response.status_code == 400
    message = " ".join(error_of(response)["fields"]["url"])
    assert "is a superuser" in message
    assert "datasource_role" in message
    assert not DataSource.objects.exists()


def test_an_http_source_hides_user_password_and_query(api_as, admin_user):
    response = api_as(admin_user).post(
        f"{API}/data-sources/",
        {"name": "Shop API", "kind": "http", "url": HTTP_SECRET_URL},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["display_url"] == "https://api.example.com/v1"
    assert_no_secret(response)


def test_a_source_from_an_environment_variable(api_as, admin_user):
    response = api_as(admin_user).post(
        f"{API}/data-sources/",
        {"name": "Env", "kind": "database", "url_env": "WAREHOUSE_URL"},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["url_env"] == "WAREHOUSE_URL"
    assert response.json()["display_url"] == "$WAREHOUSE_URL"


def test_the_list_never_shows_a_url(api_as, admin_user):
    client = api_as(admin_user)
    for name, kind, url in (("A", "database", SECRET_URL), ("B", "http", HTTP_SECRET_URL)):
        client.post(f"{API}/data-sources/", {"name": name, "kind": kind, "url": url}, format="json")

    response = client.get(f"{API}/data-sources/")

    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["A", "B"]
    assert_no_secret(response)
    for row in response.json()["results"]:
        assert "url" not in row


@pytest.mark.parametrize("who", ["pm", "engineer", "stakeholder"])
def test_only_admins_see_data_sources(request, api_as, who):
    response = api_as(request.getfixturevalue(who)).get(f"{API}/data-sources/")

    assert response.status_code == 403
    error_of(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "kind": "database", "url": "https://example.com"}, "url"),
        ({"name": "X", "kind": "http", "url": "postgres://h/db"}, "url"),
        ({"name": "X", "kind": "database"}, "url"),
        ({"name": "X", "kind": "database", "url": SECRET_URL, "url_env": "A"}, "url"),
        ({"name": "X", "kind": "database", "url_env": "NOT-A-NAME"}, "url_env"),
        ({"name": "X", "kind": "ftp", "url": "ftp://h"}, "kind"),
        ({"name": "", "kind": "database", "url": SECRET_URL}, "name"),
    ],
)
def test_invalid_sources_are_refused_without_echoing_the_url(api_as, admin_user, body, field):
    response = api_as(admin_user).post(f"{API}/data-sources/", body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert "s3cr3t" not in response.content.decode()
    assert not DataSource.objects.exists()


def test_a_source_name_is_unique(api_as, admin_user):
    client = api_as(admin_user)
    client.post(
        f"{API}/data-sources/", {"name": "A", "kind": "http", "url": "https://a"}, format="json"
    )

    response = client.post(
        f"{API}/data-sources/", {"name": "a", "kind": "http", "url": "https://b"}, format="json"
    )

    assert response.status_code == 400
    assert DataSource.objects.count() == 1


# Jobs


def test_list_jobs(api_as, engineer, ops_job):
    response = api_as(engineer).get(f"{API}/jobs/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [row["id"] for row in body["results"]] == [ops_job.pk]
    assert set(body["results"][0]) == JOB_FIELDS


def test_filter_jobs_by_initiative_and_kpi(api_as, admin_user, pm, unit, ops_job, ops_kpi):
    other = make_initiative(pm, unit, title="Other")
    kpi = kpi_services.kpi_define(initiative=other, user=pm, name="Other KPI")
    other_job = job_services.job_register(kpi=kpi, user=admin_user, **PYTHON_JOB)
    client = api_as(admin_user)

    def ids(query):
        return [row["id"] for row in client.get(f"{API}/jobs/", query).json()["results"]]

    assert ids({"initiative": other.key}) == [other_job.pk]
    assert ids({"initiative": ops_kpi.initiative.key}) == [ops_job.pk]
    assert ids({"kpi": ops_kpi.pk}) == [ops_job.pk]
    assert ids({"initiative": "BDO-x"}) == []


def test_an_engineer_on_the_team_registers_a_job(api_as, engineer, dev_kpi):
    response = api_as(engineer).post(
        f"{API}/jobs/", {"kpi": dev_kpi.pk, **PYTHON_JOB}, format="json"
    )

    assert response.status_code == 201, response.json()
    job = Job.objects.get(kpi=dev_kpi)
    body = response.json()
    assert body["id"] == job.pk
    assert set(body) == JOB_FIELDS
    assert (body["interval_seconds"], body["calculation"]) == (600, "portfolio.initiatives_in_ops")
    assert (body["timeout_seconds"], body["max_retries"], body["enabled"]) == (30, 2, True)
    assert job.created_by == engineer
    assert job.next_run_at is not None
    assert dt.datetime.fromisoformat(body["next_run_at"]) == job.next_run_at


def test_a_cron_job_with_a_sql_source(api_as, admin_user, engineer, dev_kpi):
    source = job_services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=SECRET_URL
    )

    response = api_as(engineer).post(
        f"{API}/jobs/",
        {
            "kpi": dev_kpi.pk,
            "schedule_kind": "cron",
            "cron": "0  6 * * *",
            "source_kind": "sql",
            "data_source": source.pk,
            "sql": "SELECT count(*) FROM orders",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["cron"] == "0 6 * * *"
    assert response.json()["data_source"] == source.pk
    assert "s3cr3t" not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PYTHON_JOB, "calculation": "os.system"}, "calculation"),
        ({**PYTHON_JOB, "interval_seconds": None}, "interval_seconds"),
        ({**PYTHON_JOB, "interval_seconds": 0}, "interval_seconds"),
        ({**PYTHON_JOB, "schedule_kind": "cron", "cron": "every day"}, "cron"),
        ({**PYTHON_JOB, "schedule_kind": "cron", "cron": "61 * * * *"}, "cron"),
        ({**PYTHON_JOB, "timeout_seconds": 0}, "timeout_seconds"),
        ({**PYTHON_JOB, "timeout_seconds": 3601}, "timeout_seconds"),
        ({**PYTHON_JOB, "max_retries": 11}, "max_retries"),
        ({**PYTHON_JOB, "source_kind": "shell"}, "source_kind"),
        ({**PYTHON_JOB, "source_kind": "sql", "sql": "SELECT 1"}, "data_source"),
        ({**PYTHON_JOB, "source_kind": "http", "json_path": "$.x"}, "data_source"),
        ({**PYTHON_JOB, "enabled": "maybe"}, "enabled"),
    ],
)
def test_invalid_jobs_are_refused(api_as, engineer, dev_kpi, body, field):
    response = api_as(engineer).post(f"{API}/jobs/", {"kpi": dev_kpi.pk, **body}, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM orders", "Only a SELECT"),
        # Writes inside the one SELECT are refused at registration too, not only at run time.
        ("WITH x AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM x", "may only read"),
        (
            "WITH x AS (UPDATE orders SET amount = 0 RETURNING 1) SELECT count(*) FROM x",
            "may only read",
        ),
        ("SELECT id INTO stolen FROM orders", "may only read"),
        ("SELECT count(*) FROM orders FOR UPDATE", "may only read"),
    ],
)
def test_a_sql_job_must_only_read(api_as, admin_user, engineer, dev_kpi, sql, message):
    source = job_services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url=SECRET_URL
    )

    response = api_as(engineer).post(
        f"{API}/jobs/",
        {
            "kpi": dev_kpi.pk,
            "schedule_kind": "interval",
            "interval_seconds": 600,
            "source_kind": "sql",
            "data_source": source.pk,
            "sql": sql,
        },
        format="json",
    )

    assert response.status_code == 400
    assert message in " ".join(error_of(response)["fields"]["sql"])
    assert not Job.objects.exists()


def test_one_job_per_kpi(api_as, engineer, ops_kpi, ops_job):
    response = api_as(engineer).post(
        f"{API}/jobs/", {"kpi": ops_kpi.pk, **PYTHON_JOB}, format="json"
    )

    assert response.status_code == 409
    assert "kpi" in error_of(response)["fields"]
    assert Job.objects.filter(kpi=ops_kpi).count() == 1


def test_a_job_for_an_unknown_kpi(api_as, engineer, db):
    response = api_as(engineer).post(f"{API}/jobs/", {"kpi": 999999, **PYTHON_JOB}, format="json")

    assert response.status_code == 400
    assert "kpi" in error_of(response)["fields"]


def test_read_one_job(api_as, stakeholder, ops_job):
    response = api_as(stakeholder).get(f"{API}/jobs/{ops_job.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == ops_job.pk
    assert response.json()["kpi"] == ops_job.kpi_id


def test_change_a_job(api_as, engineer, ops_job):
    before = ops_job.next_run_at

    response = api_as(engineer).patch(
        f"{API}/jobs/{ops_job.pk}/", {"interval_seconds": 3600, "max_retries": 5}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["interval_seconds"], response.json()["max_retries"]) == (3600, 5)
    ops_job.refresh_from_db()
    assert (ops_job.interval_seconds, ops_job.max_retries) == (3600, 5)
    assert ops_job.next_run_at > before  # the schedule changed: the next run moved
    assert ops_job.calculation == "portfolio.initiatives_in_ops"  # untouched


def test_disable_a_job(api_as, engineer, ops_job):
    response = api_as(engineer).patch(
        f"{API}/jobs/{ops_job.pk}/", {"enabled": False}, format="json"
    )

    assert response.status_code == 200
    ops_job.refresh_from_db()
    assert ops_job.enabled is False


def test_a_job_does_not_move_to_another_kpi(api_as, engineer, dev_kpi, ops_job):
    response = api_as(engineer).patch(
        f"{API}/jobs/{ops_job.pk}/", {"kpi": dev_kpi.pk}, format="json"
    )

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"kpi": ["Unknown field."]}


def test_an_invalid_change_keeps_the_job(api_as, engineer, ops_job):
    response = api_as(engineer).patch(
        f"{API}/jobs/{ops_job.pk}/", {"schedule_kind": "cron"}, format="json"
    )

    assert response.status_code == 400
    assert "cron" in error_of(response)["fields"]
    ops_job.refresh_from_db()
    assert ops_job.schedule_kind == "interval"


def test_an_unknown_job_is_404(api_as, admin_user, db):
    client = api_as(admin_user)

    assert client.get(f"{API}/jobs/999999/").status_code == 404
    assert client.patch(f"{API}/jobs/999999/", {"enabled": False}, format="json").status_code == 404
    assert client.post(f"{API}/jobs/999999/run/").status_code == 404
    assert client.get(f"{API}/jobs/999999/runs/").status_code == 404
    assert client.get(f"{API}/runs/999999/").status_code == 404


# Runs


def test_run_now_is_accepted_and_queued_on_commit(
    api_as, engineer, ops_job, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(engineer).post(f"{API}/jobs/{ops_job.pk}/run/")

    assert response.status_code == 202, response.json()
    run = Run.objects.get(pk=response.json()["run"])
    assert response.json() == {"run": run.pk, "state": "queued", "url": f"{API}/runs/{run.pk}/"}
    assert (run.job, run.trigger, run.state) == (ops_job, Trigger.MANUAL, RunState.QUEUED)
    assert run.requested_by == engineer
    assert run.deliveries == 1
    assert len(callbacks) == 1  # the task is sent once the transaction commits


def test_the_accountable_runs_a_job(api_as, pm, ops_job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(pm).post(f"{API}/jobs/{ops_job.pk}/run/", {"trigger": "manual"})

    assert response.status_code == 202
    assert len(callbacks) == 1


def test_a_trial_run_in_dev(
    api_as, admin_user, engineer, dev_kpi, django_capture_on_commit_callbacks
):
    job = job_services.job_register(kpi=dev_kpi, user=admin_user, **PYTHON_JOB)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(engineer).post(
            f"{API}/jobs/{job.pk}/run/", {"trigger": "trial"}, format="json"
        )

    assert response.status_code == 202, response.json()
    assert Run.objects.get(pk=response.json()["run"]).trigger == Trigger.TRIAL
    assert len(callbacks) == 1


def test_run_now_outside_ops_is_409(
    api_as, admin_user, engineer, dev_kpi, django_capture_on_commit_callbacks
):
    job = job_services.job_register(kpi=dev_kpi, user=admin_user, **PYTHON_JOB)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as(engineer).post(f"{API}/jobs/{job.pk}/run/")

    assert response.status_code == 409
    assert error_of(response)["code"] == "not_runnable"
    assert not Run.objects.filter(job=job).exists()
    assert callbacks == []


def test_run_now_of_a_held_initiative_is_409(api_as, pm, engineer, ops_initiative, ops_job):
    decide(ops_initiative, Decision.HOLD, pm)
    runs_before = Run.objects.count()

    response = api_as(engineer).post(f"{API}/jobs/{ops_job.pk}/run/")

    assert response.status_code == 409
    assert Run.objects.count() == runs_before


def test_run_now_of_a_disabled_job_is_409(api_as, engineer, ops_job):
    job_services.job_update(job=ops_job, user=engineer, enabled=False)

    response = api_as(engineer).post(f"{API}/jobs/{ops_job.pk}/run/")

    assert response.status_code == 409
    assert error_of(response)["code"] == "disabled"


@pytest.mark.parametrize("trigger", ["schedule", "now", ""])
def test_a_run_is_manual_or_trial(api_as, engineer, ops_job, trigger):
    response = api_as(engineer).post(
        f"{API}/jobs/{ops_job.pk}/run/", {"trigger": trigger}, format="json"
    )

    assert response.status_code == 400
    assert "trigger" in error_of(response)["fields"]


def test_the_runs_of_a_job_newest_first(api_as, stakeholder, ops_job):
    base = timezone.now() - dt.timedelta(days=1)
    for minutes in (10, 30, 20):
        Run.objects.create(job=ops_job, scheduled_for=base + dt.timedelta(minutes=minutes))
    expected = list(ops_job.runs.order_by("-scheduled_for", "-id").values_list("id", flat=True))

    response = api_as(stakeholder).get(f"{API}/jobs/{ops_job.pk}/runs/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4  # the trial run and three scheduled ones
    assert [row["id"] for row in body["results"]] == expected
    assert set(body["results"][0]) == {
        "id",
        "job",
        "scheduled_for",
        "trigger",
        "state",
        "attempt",
        "started_at",
        "finished_at",
        "duration",
        "value",
        "error",
        "worker",
    }


def test_runs_filter_by_state_and_trigger(api_as, engineer, ops_job):
    Run.objects.create(job=ops_job, scheduled_for=timezone.now() - dt.timedelta(hours=1))
    client = api_as(engineer)

    trials = client.get(f"{API}/jobs/{ops_job.pk}/runs/", {"trigger": "trial"}).json()
    queued = client.get(f"{API}/jobs/{ops_job.pk}/runs/", {"state": "queued"}).json()

    assert [row["trigger"] for row in trials["results"]] == ["trial"]
    assert [row["state"] for row in queued["results"]] == ["queued"]


def test_read_one_run(api_as, engineer, ops_job):
    trial = ops_job.runs.get(trigger=Trigger.TRIAL)

    response = api_as(engineer).get(f"{API}/runs/{trial.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["job"], body["state"], body["trigger"]) == (
        trial.pk,
        ops_job.pk,
        "succeeded",
        "trial",
    )
    assert body["attempt"] == 1
    assert body["duration"] == pytest.approx((trial.finished_at - trial.started_at).total_seconds())


def test_a_run_started_through_the_api_is_readable(api_as, engineer, ops_job):
    client = api_as(engineer)
    accepted = client.post(f"{API}/jobs/{ops_job.pk}/run/").json()

    response = client.get(accepted["url"])

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["state"]) == (accepted["run"], "queued")


def test_a_devops_engineer_added_to_the_team_operates_jobs(
    api_as, pm, devops, ops_initiative, ops_job
):
    member_add(initiative=ops_initiative, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm)

    response = api_as(devops).patch(
        f"{API}/jobs/{ops_job.pk}/", {"timeout_seconds": 60}, format="json"
    )

    assert response.status_code == 200
    ops_job.refresh_from_db()
    assert ops_job.timeout_seconds == 60
