from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from initiatives.models import TeamRole
from initiatives.services import member_add, member_remove
from jobs.models import Job, Run, RunState, SourceKind, Trigger
from jobs.services import job_register, job_update, run_request
from kpis.services import kpi_define
from phases.models import Decision
from tests.factories import decide
from tests.jobs.helpers import set_next_run

pytestmark = pytest.mark.django_db

PYTHON = {
    "schedule_kind": "interval",
    "interval_seconds": 600,
    "source_kind": "python",
    "calculation": "portfolio.initiatives_in_ops",
}


@pytest.fixture
def new_kpi(ops_initiative, pm):
    """A second KPI of the Ops initiative, without a job yet."""
    return kpi_define(initiative=ops_initiative, user=pm, name="False alarms", unit="%")


# Who registers


@pytest.mark.parametrize(
    ("who", "role"),
    [("engineer", None), ("devops", TeamRole.DEVOPS_ENGINEER)],
)
def test_engineers_on_the_team_register_jobs(request, new_kpi, ops_initiative, pm, who, role):
    user = request.getfixturevalue(who)
    if role:
        member_add(initiative=ops_initiative, member=user, role=role, user=pm)
    before = timezone.now()

    job = job_register(kpi=new_kpi, user=user, **PYTHON)

    job.refresh_from_db()
    assert job.kpi == new_kpi
    assert job.created_by == user
    assert job.enabled
    assert job.source_kind == SourceKind.PYTHON
    assert job.calculation == "portfolio.initiatives_in_ops"
    assert (job.timeout_seconds, job.max_retries) == (30, 2)
    assert before + dt.timedelta(seconds=600) <= job.next_run_at
    assert job.next_run_at <= timezone.now() + dt.timedelta(seconds=600)


def test_admin_registers_jobs(new_kpi, admin_user):
    assert job_register(kpi=new_kpi, user=admin_user, **PYTHON).created_by == admin_user


@pytest.mark.parametrize("who", ["pm", "stakeholder", "devops", "other_pm", "scientist"])
def test_others_may_not_register(request, new_kpi, who):
    # devops is not on this team; pm is the accountable owner, who does not operate jobs.
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        job_register(kpi=new_kpi, user=user, **PYTHON)

    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_stakeholder_on_the_team_may_not_register(new_kpi, ops_initiative, pm, stakeholder):
    member_add(initiative=ops_initiative, member=stakeholder, role=TeamRole.STAKEHOLDER, user=pm)

    with pytest.raises(PermissionDenied):
        job_register(kpi=new_kpi, user=stakeholder, **PYTHON)


def test_data_scientist_on_the_team_may_not_register(dev_initiative, scientist):
    # pass_biz_gate put the scientist on the team (scientists leave it on entering Ops).
    assert dev_initiative.memberships.filter(user=scientist, left_at__isnull=True).exists()

    with pytest.raises(PermissionDenied):
        job_register(kpi=dev_initiative.kpis.get(), user=scientist, **PYTHON)


def test_engineer_who_left_the_team_may_not_register(new_kpi, ops_initiative, pm, engineer):
    membership = ops_initiative.memberships.get(user=engineer, left_at__isnull=True)
    member_remove(membership=membership, user=pm)

    with pytest.raises(PermissionDenied):
        job_register(kpi=new_kpi, user=engineer, **PYTHON)


def test_engineer_of_another_initiative_may_not_register(new_kpi, pm, unit, devops):
    from tests.factories import make_initiative

    other = make_initiative(pm, unit, title="Other")
    member_add(initiative=other, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm)

    with pytest.raises(PermissionDenied):
        job_register(kpi=new_kpi, user=devops, **PYTHON)


def test_job_may_be_registered_in_biz(ready_initiative, engineer):
    job = job_register(kpi=ready_initiative.kpis.get(), user=engineer, **PYTHON)
    assert job.pk is not None


# One per KPI, closed initiatives


def test_one_job_per_kpi(ops_job, engineer):
    with pytest.raises(ConflictError) as excinfo:
        job_register(kpi=ops_job.kpi, user=engineer, **PYTHON)

    assert excinfo.value.field == "kpi"
    assert Job.objects.filter(kpi=ops_job.kpi).count() == 1


@pytest.mark.parametrize("decision", [Decision.KILL, Decision.RETIRE])
def test_closed_initiatives_refuse_jobs(new_kpi, ops_initiative, ops_job, pm, engineer, decision):
    decide(ops_initiative, decision, pm)

    with pytest.raises(ConflictError) as excinfo:
        job_register(kpi=new_kpi, user=engineer, **PYTHON)
    assert excinfo.value.code == "final_status"
    with pytest.raises(ConflictError):
        job_update(job=ops_job, user=engineer, timeout_seconds=60)

    assert not Job.objects.filter(kpi=new_kpi).exists()
    ops_job.refresh_from_db()
    assert ops_job.timeout_seconds == 30


def test_held_initiative_still_takes_jobs(new_kpi, ops_initiative, pm, engineer):
    decide(ops_initiative, Decision.HOLD, pm)
    assert job_register(kpi=new_kpi, user=engineer, **PYTHON).pk is not None


@pytest.mark.parametrize("field", ["created_by", "next_run_at", "state", "colour"])
def test_unknown_fields_are_refused(new_kpi, engineer, field):
    with pytest.raises(DomainError) as excinfo:
        job_register(kpi=new_kpi, user=engineer, **PYTHON, **{field: None})

    assert field in excinfo.value.message
    assert not Job.objects.filter(kpi=new_kpi).exists()


# Validation per source kind


def test_sql_job_needs_a_database_source_and_one_select(new_kpi, engineer, sqlite_source):
    job = job_register(
        kpi=new_kpi,
        user=engineer,
        schedule_kind="cron",
        cron="*/5  *  * * *",
        source_kind="sql",
        data_source=sqlite_source,
        sql="  SELECT count(*) FROM orders;  ",
        json_path="$.ignored",
        calculation="portfolio.initiatives_in_ops",
    )

    job.refresh_from_db()
    assert job.cron == "*/5 * * * *"
    assert job.interval_seconds is None
    assert job.sql == "SELECT count(*) FROM orders"
    assert (job.json_path, job.calculation, job.http_path) == ("", "", "")


def test_http_job_needs_an_http_source_and_a_json_path(new_kpi, engineer, admin_user):
    from jobs.services import data_source_save

    api = data_source_save(user=admin_user, name="API", kind="http", url="https://api.example.com/")
    job = job_register(
        kpi=new_kpi,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=60,
        source_kind="http",
        data_source=api,
        http_path="metrics",
        json_path="  $.value ",
        sql="SELECT 1",
    )

    job.refresh_from_db()
    assert (job.http_path, job.json_path, job.sql, job.calculation) == (
        "metrics",
        "$.value",
        "",
        "",
    )


def test_python_job_drops_the_other_source_fields(new_kpi, engineer, sqlite_source):
    job = job_register(
        kpi=new_kpi, user=engineer, **PYTHON, data_source=sqlite_source, sql="SELECT 1"
    )

    job.refresh_from_db()
    assert job.data_source is None
    assert job.sql == ""


@pytest.fixture
def api_source(admin_user):
    from jobs.services import data_source_save

    return data_source_save(
        user=admin_user, name="API", kind="http", url="https://api.example.com/"
    )


SQL_BAD = [
    ("DELETE FROM orders", "sql"),
    ("SELECT 1; SELECT 2", "sql"),
    ("UPDATE orders SET amount = 0", "sql"),
    ("", "sql"),
    # sqlparse sees one SELECT (it reads \' as an escaped quote); PostgreSQL sees three
    # statements, the second a COMMIT that ends the read-only transaction.
    ("SELECT '\\'; COMMIT; DROP TABLE orders; --'", "sql"),
]


@pytest.mark.parametrize(("sql", "field"), SQL_BAD)
def test_sql_job_refuses_anything_but_one_select(new_kpi, engineer, sqlite_source, sql, field):
    with pytest.raises(DomainError) as excinfo:
        job_register(
            kpi=new_kpi,
            user=engineer,
            schedule_kind="interval",
            interval_seconds=60,
            source_kind="sql",
            data_source=sqlite_source,
            sql=sql,
        )

    assert excinfo.value.field == field
    assert not Job.objects.filter(kpi=new_kpi).exists()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"source_kind": "sql", "sql": "SELECT 1"}, "data_source"),
        ({"source_kind": "sql", "sql": "SELECT 1", "data_source": "api"}, "data_source"),
        ({"source_kind": "http", "json_path": "$.v"}, "data_source"),
        ({"source_kind": "http", "json_path": "$.v", "data_source": "db"}, "data_source"),
        ({"source_kind": "http", "json_path": "  ", "data_source": "api"}, "json_path"),
        ({"source_kind": "http", "data_source": "api"}, "json_path"),
        ({"source_kind": "http", "json_path": "$[", "data_source": "api"}, "json_path"),
        ({"source_kind": "python", "calculation": "os.system"}, "calculation"),
        ({"source_kind": "python", "calculation": ""}, "calculation"),
        ({"source_kind": "shell", "calculation": "portfolio.initiatives_in_ops"}, "source_kind"),
        ({"source_kind": "python", **PYTHON, "timeout_seconds": 0}, "timeout_seconds"),
        ({"source_kind": "python", **PYTHON, "timeout_seconds": 3601}, "timeout_seconds"),
        ({"source_kind": "python", **PYTHON, "max_retries": 11}, "max_retries"),
        ({"source_kind": "python", **PYTHON, "max_retries": -1}, "max_retries"),
        ({**PYTHON, "schedule_kind": "cron", "cron": "61 * * * *"}, "cron"),
        ({**PYTHON, "schedule_kind": "cron", "cron": "* * * *"}, "cron"),
        ({**PYTHON, "schedule_kind": "cron", "cron": "0 0 31 2 *"}, "cron"),
        ({**PYTHON, "interval_seconds": 5}, "interval_seconds"),
        ({**PYTHON, "interval_seconds": None}, "interval_seconds"),
        ({**PYTHON, "schedule_kind": "hourly"}, "schedule_kind"),
    ],
)
def test_job_validation(new_kpi, engineer, sqlite_source, api_source, values, field):
    values = {"schedule_kind": "interval", "interval_seconds": 60} | values
    if values.get("data_source") in ("api", "db"):
        values["data_source"] = api_source if values["data_source"] == "api" else sqlite_source

    with pytest.raises(DomainError) as excinfo:
        job_register(kpi=new_kpi, user=engineer, **values)

    assert excinfo.value.field == field
    assert not Job.objects.filter(kpi=new_kpi).exists()


# job_update


def test_changing_the_schedule_recomputes_next_run(ops_job, engineer):
    far = timezone.now() + dt.timedelta(days=30)
    set_next_run(ops_job, far)
    before = timezone.now()

    job_update(job=ops_job, user=engineer, interval_seconds=60)

    ops_job.refresh_from_db()
    assert ops_job.interval_seconds == 60
    assert before + dt.timedelta(seconds=60) <= ops_job.next_run_at
    assert ops_job.next_run_at <= timezone.now() + dt.timedelta(seconds=60)


def test_changing_to_cron_recomputes_next_run(ops_job, engineer):
    set_next_run(ops_job, timezone.now() + dt.timedelta(days=30))

    job_update(job=ops_job, user=engineer, schedule_kind="cron", cron="*/10 * * * *")

    ops_job.refresh_from_db()
    assert ops_job.interval_seconds is None
    assert ops_job.next_run_at <= timezone.now() + dt.timedelta(minutes=10)
    assert ops_job.next_run_at.minute % 10 == 0
    assert ops_job.next_run_at.second == 0


def test_other_changes_keep_next_run(ops_job, engineer):
    far = timezone.now() + dt.timedelta(days=30)
    set_next_run(ops_job, far)

    job_update(job=ops_job, user=engineer, timeout_seconds=90, max_retries=5, enabled=False)

    ops_job.refresh_from_db()
    assert (ops_job.timeout_seconds, ops_job.max_retries, ops_job.enabled) == (90, 5, False)
    assert ops_job.next_run_at == far


def test_job_update_validates_the_merged_values(ops_job, engineer):
    with pytest.raises(DomainError) as excinfo:
        job_update(job=ops_job, user=engineer, source_kind="sql")

    assert excinfo.value.field == "data_source"
    ops_job.refresh_from_db()
    assert ops_job.source_kind == SourceKind.PYTHON


@pytest.mark.parametrize("who", ["pm", "stakeholder", "devops"])
def test_others_may_not_update_jobs(request, ops_job, who):
    with pytest.raises(PermissionDenied):
        job_update(job=ops_job, user=request.getfixturevalue(who), enabled=False)

    ops_job.refresh_from_db()
    assert ops_job.enabled


# run_request


def test_run_now_in_ops_queues_one_run(ops_job, engineer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        run = run_request(job=ops_job, user=engineer)

    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.trigger == Trigger.MANUAL
    assert run.state == RunState.QUEUED
    assert run.requested_by == engineer
    assert run.deliveries == 1
    assert run.enqueued_at is not None
    assert run.scheduled_for <= timezone.now()


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_pm_and_admin_may_run_now(request, ops_job, who):
    assert run_request(job=ops_job, user=request.getfixturevalue(who)).pk is not None


@pytest.mark.parametrize("who", ["stakeholder", "other_pm", "devops", "scientist"])
def test_others_may_not_run(request, ops_job, who, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(PermissionDenied):
        run_request(job=ops_job, user=request.getfixturevalue(who))

    assert callbacks == []
    assert not ops_job.runs.exclude(trigger=Trigger.TRIAL).exists()


@pytest.mark.parametrize("decision", [Decision.HOLD, Decision.RECYCLE])
def test_run_now_needs_an_active_initiative_in_ops(
    ops_initiative, ops_job, pm, engineer, decision, django_capture_on_commit_callbacks
):
    decide(ops_initiative, decision, pm)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ConflictError) as exc:
        run_request(job=ops_job, user=engineer)

    assert exc.value.code == "not_runnable"
    assert callbacks == []
    assert not ops_job.runs.filter(trigger=Trigger.MANUAL).exists()


def test_run_now_is_refused_in_dev(dev_initiative, engineer):
    job = job_register(kpi=dev_initiative.kpis.get(), user=engineer, **PYTHON)

    with pytest.raises(ConflictError) as excinfo:
        run_request(job=job, user=engineer, trigger=Trigger.MANUAL)

    assert excinfo.value.code == "not_runnable"
    assert not job.runs.exists()


def test_run_now_refuses_a_disabled_job(ops_job, engineer):
    job = job_update(job=ops_job, user=engineer, enabled=False)

    with pytest.raises(ConflictError) as excinfo:
        run_request(job=job, user=engineer)

    assert excinfo.value.code == "disabled"
    assert not job.runs.filter(trigger=Trigger.MANUAL).exists()


def test_run_now_checks_the_stored_job_not_a_stale_copy(ops_job, engineer):
    # Like initiative_lock for the initiative, the job must be re-read: a copy loaded before
    # someone disabled the job (a page open in another tab, a second request) still says
    # enabled.
    stale = Job.objects.get(pk=ops_job.pk)
    job_update(job=ops_job, user=engineer, enabled=False)

    with pytest.raises(ConflictError) as excinfo:
        run_request(job=stale, user=engineer)

    assert excinfo.value.code == "disabled"
    assert not ops_job.runs.filter(trigger=Trigger.MANUAL).exists()


@pytest.mark.parametrize("phase", ["dev", "ops"])
def test_trial_run_in_dev_or_ops(request, phase, engineer, django_capture_on_commit_callbacks):
    initiative = request.getfixturevalue(f"{phase}_initiative")
    kpi = initiative.kpis.get()
    job = Job.objects.filter(kpi=kpi).first() or job_register(kpi=kpi, user=engineer, **PYTHON)

    with django_capture_on_commit_callbacks() as callbacks:
        run = run_request(job=job, user=engineer, trigger=Trigger.TRIAL)

    assert len(callbacks) == 1
    assert (run.trigger, run.state) == (Trigger.TRIAL, RunState.QUEUED)


def test_trial_run_is_refused_in_biz(ready_initiative, engineer):
    job = job_register(kpi=ready_initiative.kpis.get(), user=engineer, **PYTHON)

    with pytest.raises(ConflictError) as excinfo:
        run_request(job=job, user=engineer, trigger=Trigger.TRIAL)

    assert excinfo.value.code == "not_runnable"
    assert not job.runs.exists()


@pytest.mark.parametrize("decision", [Decision.HOLD, Decision.KILL])
def test_trial_run_is_refused_when_not_active(dev_initiative, pm, engineer, decision):
    job = job_register(kpi=dev_initiative.kpis.get(), user=engineer, **PYTHON)
    decide(dev_initiative, decision, pm)

    with pytest.raises(ConflictError):
        run_request(job=job, user=engineer, trigger=Trigger.TRIAL)

    assert not job.runs.exists()


def test_scheduled_is_not_a_trigger_by_hand(ops_job, engineer):
    with pytest.raises(DomainError) as excinfo:
        run_request(job=ops_job, user=engineer, trigger=Trigger.SCHEDULE)

    assert excinfo.value.field == "trigger"
    assert not Run.objects.filter(trigger=Trigger.SCHEDULE).exists()
