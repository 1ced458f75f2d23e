"""The Ops pages for KPI jobs through the Django test client: the Ops list, registering and
editing a job, enabling / disabling it, trial runs and 'run now' with their live state, and
the schedule preview. No broker runs here: enqueueing is asserted as one on-commit callback,
and runs are executed by calling the service."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import dateformat, timezone

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, Phase, Status, TeamRole
from jobs import scheduling, services
from jobs.models import DataSource, Job, Run, RunState, Trigger
from kpis import services as kpi_services
from kpis.models import KPI
from tests.factories import make_initiative
from tests.helpers import HTMX, html, queries
from tests.jobs.helpers import scheduled_run

pytestmark = pytest.mark.django_db

REFUSED = "That is not possible now"
POLLS = 'hx-trigger="every 1s"'
PYTHON_JOB = {
    "schedule_kind": "interval",
    "interval_seconds": 300,
    "source_kind": "python",
    "calculation": "portfolio.initiatives_in_ops",
}
SECTION = re.compile(
    r'<section class="card ops-initiative" data-key="(?P<key>BDO-\d+)">(?P<body>.*?)</section>',
    re.S,
)


def _sections(content: str) -> dict[str, str]:
    """The Ops page's initiative sections, by initiative key."""
    return {m.group("key"): m.group("body") for m in SECTION.finditer(content)}


def _kpi_row(section: str, kpi: KPI) -> str:
    match = re.search(rf'<tr data-kpi="{kpi.pk}">(.*?)</tr>', section, re.S)
    assert match is not None, f"no row for KPI {kpi.name}"
    return match.group(1)


def _run_row(content: str, run: Run) -> str:
    match = re.search(rf'<tr data-run="{run.pk}">(.*?)</tr>', content, re.S)
    assert match is not None, f"no row for run {run.pk}"
    return match.group(1)


def _register_link(kpi: KPI) -> str:
    return f'href="/ops/kpis/{kpi.pk}/job/"'


def _job_url(job: Job, tail: str = "") -> str:
    return f"/ops/jobs/{job.pk}/{tail}"


def _form_data(job: Job, **overrides: Any) -> dict[str, Any]:
    """What the job form posts when nothing is changed, plus the overrides."""
    data: dict[str, Any] = {
        "schedule_kind": job.schedule_kind,
        "cron": job.cron,
        "interval_seconds": job.interval_seconds if job.interval_seconds is not None else "",
        "source_kind": job.source_kind,
        "data_source": job.data_source_id or "",
        "sql": job.sql,
        "http_path": job.http_path,
        "json_path": job.json_path,
        "calculation": job.calculation,
        "timeout_seconds": job.timeout_seconds,
        "max_retries": job.max_retries,
    }
    if job.enabled:
        data["enabled"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _new_job_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schedule_kind": "cron",
        "cron": "*/15 * * * *",
        "interval_seconds": "",
        "source_kind": "python",
        "data_source": "",
        "sql": "",
        "http_path": "",
        "json_path": "",
        "calculation": "portfolio.initiatives_in_ops",
        "timeout_seconds": 30,
        "max_retries": 2,
        "enabled": "on",
    }
    data.update(overrides)
    return data


def _move_to(initiative: Initiative, phase: Phase, status: Status = Status.ACTIVE) -> None:
    # Bulk setup for list pages only: going through every gate for many initiatives would
    # test the gates again, not the Ops page.
    Initiative.objects.filter(pk=initiative.pk).update(
        phase=phase,
        status=status,
        dev_started_at=timezone.now() if phase != Phase.BIZ else None,
    )


def _preview_times(content: str) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(t) for t in re.findall(r'<time datetime="([^"]+)">', content)]


@pytest.fixture
def outsider(make_user: Any) -> Any:
    """A data engineer who is on no team."""
    return make_user(Role.DATA_ENGINEER, username="outsider")


@pytest.fixture
def dev_job(dev_initiative: Initiative, engineer: Any) -> Job:
    """The Dev initiative's KPI with a Python-calculation job (no trial run yet)."""
    kpi = dev_initiative.kpis.get(name="Fraud caught")
    return services.job_register(kpi=kpi, user=engineer, **PYTHON_JOB)


@pytest.fixture
def new_kpi(ops_initiative: Initiative, pm: Any) -> KPI:
    """A second KPI of the Ops initiative, without a job."""
    return kpi_services.kpi_define(
        initiative=ops_initiative, user=pm, name="False alarms", unit="%"
    )


# The Ops page -------------------------------------------------------------------------------


@pytest.fixture
def ops_portfolio(
    ops_initiative: Initiative, ops_job: Job, new_kpi: KPI, pm: Any, unit: BusinessUnit
) -> dict[str, Any]:
    """The Ops initiative (a job with a trial run and a scheduled run, a KPI without a job),
    a Dev initiative of another team, one in Biz, a cancelled one and a retired one."""
    # Dispatched a little later than the trial run, so it is the newest run.
    run = scheduled_run(ops_job, now=timezone.now() + dt.timedelta(seconds=5))
    services.run_execute(run_id=run.pk, worker="tests")  # 1 initiative in Ops: value 1.0

    churn = make_initiative(pm, unit, title="Churn prediction")
    churn_kpi = kpi_services.kpi_define(initiative=churn, user=pm, name="Churn rate", unit="%")
    _move_to(churn, Phase.DEV)

    others = {}
    for title, phase, status in [
        ("Biz idea", Phase.BIZ, Status.ACTIVE),
        ("Cancelled thing", Phase.DEV, Status.CANCELLED),
        ("Retired thing", Phase.OPS, Status.RETIRED),
    ]:
        initiative = make_initiative(pm, unit, title=title)
        kpi_services.kpi_define(initiative=initiative, user=pm, name=f"{title} KPI")
        _move_to(initiative, phase, status)
        others[title] = initiative
    return {
        "ops": ops_initiative,
        "job": ops_job,
        "run": run,
        "new_kpi": new_kpi,
        "dev": churn,
        "dev_kpi": churn_kpi,
        **others,
    }


def test_ops_lists_dev_and_ops_initiatives_with_kpis_jobs_runs_and_values(
    client: Any, engineer: Any, ops_portfolio: dict[str, Any]
) -> None:
    client.force_login(engineer)
    content = html(client.get("/ops/"))
    sections = _sections(content)

    ops, dev = ops_portfolio["ops"], ops_portfolio["dev"]
    assert list(sections) == [ops.key, dev.key]  # Ops first, then Dev
    for title in ("Biz idea", "Cancelled thing", "Retired thing"):
        assert ops_portfolio[title].key not in content
        assert title not in content

    section = sections[ops.key]
    assert "Card-fraud detection" in section
    assert "badge-ops" in section
    job = ops_portfolio["job"]
    job.refresh_from_db()
    row = _kpi_row(section, job.kpi)
    assert "Fraud caught" in row
    assert "every 5 minutes" in row
    assert "Python calculation" in row
    assert f'href="{_job_url(job)}"' in row
    assert job.next_run_at is not None
    assert dateformat.format(timezone.localtime(job.next_run_at), "j M, H:i") in row
    # The trial run of the Dev → Ops gate and the scheduled run, newest first.
    badges = re.findall(r'<span class="badge run-(\w+)" title="([^"]*)">(\w+)</span>', row)
    assert badges == [
        ("succeeded", "Schedule", "Succeeded"),
        ("succeeded", "Trial run", "Succeeded"),
    ]
    # The last value is the scheduled run's (a trial run writes no measurement).
    assert re.search(r"<strong>1\.00</strong> %", row), row

    empty_row = _kpi_row(section, ops_portfolio["new_kpi"])
    assert "No job yet." in empty_row

    dev_section = sections[dev.key]
    assert "badge-dev" in dev_section
    assert "No job yet." in _kpi_row(dev_section, ops_portfolio["dev_kpi"])


def test_ops_shows_a_failed_run_and_not_scheduled_outside_ops(
    client: Any, engineer: Any, dev_job: Job
) -> None:
    run = services.run_request(job=dev_job, user=engineer, trigger=Trigger.TRIAL)
    claimed = services.run_start(run_id=run.pk, worker="tests")
    assert claimed is not None
    services.run_fail(run=claimed, error="Warehouse said no", retry=False)

    client.force_login(engineer)
    sections = _sections(html(client.get("/ops/")))
    row = _kpi_row(sections[dev_job.kpi.initiative.key], dev_job.kpi)
    assert '<span class="badge run-failed" title="Trial run: Warehouse said no">Failed</span>' in (
        row
    )
    assert "not scheduled" in row
    assert '<span class="muted">–</span>' in row  # no value yet


@pytest.mark.parametrize(
    ("who", "sees_link"),
    [
        ("engineer", True),
        ("admin_user", True),
        ("stakeholder", False),
        ("pm", False),
        ("outsider", False),
    ],
)
def test_register_job_link_only_for_operators(
    request: pytest.FixtureRequest,
    client: Any,
    ops_portfolio: dict[str, Any],
    outsider: Any,
    admin_user: Any,
    who: str,
    sees_link: bool,
) -> None:
    client.force_login(request.getfixturevalue(who))
    content = html(client.get("/ops/"))
    assert (_register_link(ops_portfolio["new_kpi"]) in content) is sees_link
    assert ("Register job" in _sections(content)[ops_portfolio["ops"].key]) is sees_link
    # The Dev initiative's team has no engineer: only an admin operates its jobs.
    assert (_register_link(ops_portfolio["dev_kpi"]) in content) is (who == "admin_user")


def test_register_job_link_for_a_devops_engineer_on_the_team(
    client: Any, devops: Any, pm: Any, ops_portfolio: dict[str, Any]
) -> None:
    dev = ops_portfolio["dev"]
    initiative_services.member_add(
        initiative=dev, member=devops, role=TeamRole.DEVOPS_ENGINEER, user=pm
    )
    client.force_login(devops)
    content = html(client.get("/ops/"))
    assert _register_link(ops_portfolio["dev_kpi"]) in content
    assert _register_link(ops_portfolio["new_kpi"]) not in content


def _populate(
    count: int, *, pm: Any, admin: Any, engineer: Any, unit: BusinessUnit, source: DataSource
) -> None:
    """Initiatives in Dev and Ops, each with two KPIs with a job (Python, SQL), several runs
    per job (more than the page shows) and a measurement, and a KPI without a job."""
    now = timezone.now()
    states = [RunState.SUCCEEDED, RunState.FAILED, RunState.QUEUED, RunState.SKIPPED]
    for n in range(count):
        initiative = make_initiative(pm, unit, title=f"Initiative {Initiative.objects.count()}")
        initiative_services.member_add(
            initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
        )
        for name, source_values in [
            ("Python KPI", PYTHON_JOB),
            (
                "SQL KPI",
                {
                    "schedule_kind": "cron",
                    "cron": "0 * * * *",
                    "source_kind": "sql",
                    "data_source": source,
                    "sql": "SELECT count(*) FROM orders",
                },
            ),
        ]:
            kpi = kpi_services.kpi_define(initiative=initiative, user=pm, name=name, target=10)
            job = services.job_register(kpi=kpi, user=admin, **source_values)
            Run.objects.bulk_create(
                Run(
                    job=job,
                    scheduled_for=now - dt.timedelta(minutes=i),
                    trigger=Trigger.SCHEDULE,
                    state=states[i % len(states)],
                    error="boom" if states[i % len(states)] == RunState.FAILED else "",
                    value=float(i) if states[i % len(states)] == RunState.SUCCEEDED else None,
                )
                for i in range(7)
            )
            kpi_services.measurement_record(kpi=kpi, as_of=now, value=float(n), origin="api")
        kpi_services.kpi_define(initiative=initiative, user=pm, name="KPI without a job")
        _move_to(initiative, Phase.OPS if n % 2 else Phase.DEV)


def test_ops_query_count_does_not_grow_with_initiatives(
    client: Any,
    pm: Any,
    admin_user: Any,
    engineer: Any,
    unit: BusinessUnit,
    sqlite_source: DataSource,
) -> None:
    setup = {
        "pm": pm,
        "admin": admin_user,
        "engineer": engineer,
        "unit": unit,
        "source": sqlite_source,
    }
    _populate(2, **setup)
    client.force_login(engineer)
    client.get("/ops/")  # warm-up (content types, session)
    few = queries(client, "/ops/")

    _populate(6, **setup)
    content = html(client.get("/ops/"))
    assert len(_sections(content)) == 8
    assert content.count('<span class="badge run-') == 8 * 2 * 5  # five recent runs per job
    assert content.count("No job yet.") == 8
    many = queries(client, "/ops/")

    assert few == many, (few, many)


# Registering a job ---------------------------------------------------------------------------


def test_job_form_shows_for_an_operator(client: Any, engineer: Any, new_kpi: KPI) -> None:
    client.force_login(engineer)
    content = html(client.get(f"/ops/kpis/{new_kpi.pk}/job/"))
    assert "Register the job of “False alarms”" in content
    assert 'name="cron"' in content
    assert 'hx-get="/ops/schedule-preview/"' in content


def test_register_a_job(client: Any, engineer: Any, new_kpi: KPI) -> None:
    client.force_login(engineer)
    before = timezone.now()
    response = client.post(f"/ops/kpis/{new_kpi.pk}/job/", _new_job_data())

    job = Job.objects.get(kpi=new_kpi)
    assert response.status_code == 302
    assert response["Location"] == _job_url(job)
    assert (job.schedule_kind, job.cron, job.interval_seconds) == ("cron", "*/15 * * * *", None)
    assert (job.source_kind, job.calculation) == ("python", "portfolio.initiatives_in_ops")
    assert job.created_by == engineer
    assert job.enabled
    assert job.next_run_at is not None
    assert job.next_run_at > before
    assert job.next_run_at.minute % 15 == 0
    assert job.next_run_at - before <= dt.timedelta(minutes=15)

    followed = html(client.get(response["Location"]))
    assert "Job registered for False alarms" in followed


def test_register_with_a_bad_cron_shows_the_error_and_keeps_the_input(
    client: Any, engineer: Any, new_kpi: KPI
) -> None:
    client.force_login(engineer)
    response = client.post(
        f"/ops/kpis/{new_kpi.pk}/job/", _new_job_data(cron="61 * * * *", max_retries=4)
    )

    content = html(response, 400)
    assert "is not a valid cron expression" in content
    assert 'value="61 * * * *"' in content
    assert re.search(r'name="max_retries" value="4"', content)
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_register_with_two_sql_statements_is_refused(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    sql = "SELECT count(*) FROM orders; DELETE FROM orders"
    response = client.post(
        f"/ops/kpis/{new_kpi.pk}/job/",
        _new_job_data(source_kind="sql", data_source=sqlite_source.pk, sql=sql, calculation=""),
    )

    content = html(response, 400)
    assert "Only one statement is allowed" in content
    assert "SELECT count(*) FROM orders; DELETE FROM orders</textarea>" in content
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_register_with_a_data_modifying_cte_is_refused(
    client: Any, engineer: Any, new_kpi: KPI, sqlite_source: DataSource
) -> None:
    client.force_login(engineer)
    sql = "WITH gone AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM gone"
    response = client.post(
        f"/ops/kpis/{new_kpi.pk}/job/",
        _new_job_data(source_kind="sql", data_source=sqlite_source.pk, sql=sql, calculation=""),
    )

    content = html(response, 400)
    assert "DELETE is not allowed, not even inside a WITH clause" in content
    assert f"{sql}</textarea>" in content
    assert not Job.objects.filter(kpi=new_kpi).exists()


def test_a_kpi_with_a_job_redirects_to_its_job(client: Any, engineer: Any, ops_job: Job) -> None:
    client.force_login(engineer)
    url = f"/ops/kpis/{ops_job.kpi_id}/job/"
    for response in (client.get(url), client.post(url, _new_job_data())):
        assert response.status_code == 302
        assert response["Location"] == _job_url(ops_job)
    assert Job.objects.filter(kpi_id=ops_job.kpi_id).count() == 1
    ops_job.refresh_from_db()
    assert ops_job.schedule_kind == "interval"


# The job page ------------------------------------------------------------------------------


def test_job_page_shows_runs_with_errors_and_next_five_fire_times(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    ops_job = services.job_update(
        job=ops_job, user=engineer, schedule_kind="cron", cron="0 3 * * *"
    )
    run = services.run_request(job=ops_job, user=engineer, trigger=Trigger.MANUAL)
    claimed = services.run_start(run_id=run.pk, worker="tests")
    assert claimed is not None
    services.run_fail(run=claimed, error="Warehouse said no", retry=False)
    trial = ops_job.runs.get(trigger=Trigger.TRIAL)

    client.force_login(engineer)
    now = timezone.now()
    content = html(client.get(_job_url(ops_job)))

    failed = _run_row(content, run)
    assert "Run now" in failed
    assert "run-failed" in failed
    assert '<td class="error-cell">Warehouse said no</td>' in failed
    succeeded = _run_row(content, trial)
    assert "run-succeeded" in succeeded
    assert content.index(f'data-run="{run.pk}"') < content.index(f'data-run="{trial.pk}"')

    upcoming = re.search(r'<ol class="upcoming">(.*?)</ol>', content, re.S)
    assert upcoming is not None
    shown = re.findall(r"<li>(.*?)</li>", upcoming.group(1))
    expected = [
        dateformat.format(timezone.localtime(t), "D j M, H:i:s")
        for t in scheduling.upcoming("cron", "0 3 * * *", None, now)
    ]
    assert shown == expected
    assert all(t.endswith("03:00:00") for t in shown)
    assert "cron 0 3 * * *" in content


def test_job_page_outside_ops_shows_no_fire_times(client: Any, engineer: Any, dev_job: Job) -> None:
    client.force_login(engineer)
    content = html(client.get(_job_url(dev_job)))
    assert "Not scheduled: jobs run while the initiative is active in Ops (Dev, active)." in content
    assert 'class="upcoming"' not in content
    assert "No run yet." in content
    assert "Trial run</button>" in content
    assert "Run now</button>" not in content  # 'run now' is for Ops only


def test_operator_edits_the_schedule(client: Any, engineer: Any, ops_job: Job) -> None:
    previous = ops_job.next_run_at
    client.force_login(engineer)
    before = timezone.now()
    response = client.post(
        _job_url(ops_job), _form_data(ops_job, schedule_kind="cron", cron="*/15 * * * *")
    )
    after = timezone.now()

    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == _job_url(ops_job)
    ops_job.refresh_from_db()
    assert (ops_job.schedule_kind, ops_job.cron, ops_job.interval_seconds) == (
        "cron",
        "*/15 * * * *",
        None,
    )
    assert ops_job.next_run_at != previous
    assert ops_job.next_run_at in {
        scheduling.next_after("cron", "*/15 * * * *", None, before),
        scheduling.next_after("cron", "*/15 * * * *", None, after),
    }
    # Nothing else changed.
    assert (ops_job.source_kind, ops_job.calculation) == ("python", "portfolio.initiatives_in_ops")
    assert (ops_job.timeout_seconds, ops_job.max_retries, ops_job.enabled) == (30, 2, True)
    assert "Job saved." in html(client.get(_job_url(ops_job)))


def test_edit_with_a_bad_cron_shows_the_error(client: Any, engineer: Any, ops_job: Job) -> None:
    client.force_login(engineer)
    response = client.post(
        _job_url(ops_job), _form_data(ops_job, schedule_kind="cron", cron="0 0 * * 8")
    )
    content = html(response, 400)
    assert "is not a valid cron expression" in content
    assert 'value="0 0 * * 8"' in content
    assert "<details open>" in content
    ops_job.refresh_from_db()
    assert (ops_job.schedule_kind, ops_job.interval_seconds) == ("interval", 300)


@pytest.mark.parametrize("who", ["pm", "stakeholder", "outsider"])
def test_the_job_page_offers_non_operators_no_edit(
    request: pytest.FixtureRequest, client: Any, ops_job: Job, outsider: Any, who: str
) -> None:
    # Their edits are refused: tests/test_page_permissions.py.
    client.force_login(request.getfixturevalue(who))
    page = html(client.get(_job_url(ops_job)))
    assert "Edit the job" not in page
    assert "toggle/" not in page


def test_htmx_get_returns_only_the_runs_partial(client: Any, engineer: Any, ops_job: Job) -> None:
    client.force_login(engineer)
    content = html(client.get(_job_url(ops_job), **HTMX)).strip()
    assert content.startswith('<div id="runs">')
    assert content.endswith("</div>")
    assert "<html" not in content
    assert 'id="run-status"' not in content
    assert "Edit the job" not in content
    trial = ops_job.runs.get(trigger=Trigger.TRIAL)
    assert f'data-run="{trial.pk}"' in content


def _add_runs(job: Job, count: int, user: Any) -> None:
    start = timezone.now() - dt.timedelta(days=1)
    Run.objects.bulk_create(
        Run(
            job=job,
            scheduled_for=start + dt.timedelta(minutes=job.runs.count() + i),
            trigger=Trigger.MANUAL if i % 2 else Trigger.SCHEDULE,
            state=RunState.FAILED if i % 3 == 0 else RunState.SUCCEEDED,
            error="boom" if i % 3 == 0 else "",
            value=None if i % 3 == 0 else float(i),
            requested_by=user if i % 2 else None,
            started_at=start,
            finished_at=start + dt.timedelta(seconds=2),
        )
        for i in range(count)
    )


@pytest.mark.parametrize("extra", [{}, HTMX], ids=["page", "htmx"])
def test_job_page_query_count_does_not_grow_with_runs(
    client: Any, engineer: Any, ops_job: Job, extra: dict[str, str]
) -> None:
    ops_job.runs.all().delete()
    _add_runs(ops_job, 3, engineer)
    client.force_login(engineer)
    client.get(_job_url(ops_job), **extra)  # warm-up
    few = queries(client, _job_url(ops_job), **extra)

    _add_runs(ops_job, 27, engineer)
    content = html(client.get(_job_url(ops_job), **extra))
    assert content.count("<tr data-run=") == 30
    many = queries(client, _job_url(ops_job), **extra)

    assert few == many, (few, many)


# Enable / disable ----------------------------------------------------------------------------


def test_operator_disables_and_enables_a_job(client: Any, engineer: Any, ops_job: Job) -> None:
    client.force_login(engineer)

    response = client.post(_job_url(ops_job, "toggle/"))
    assert response.status_code == 302
    assert response["Location"] == _job_url(ops_job)
    ops_job.refresh_from_db()
    assert not ops_job.enabled
    page = html(client.get(_job_url(ops_job)))
    assert "Job disabled." in page
    assert "<strong>disabled</strong>" in page
    assert "Run now</button>" not in page

    response = client.post(_job_url(ops_job, "toggle/"))
    assert response.status_code == 302
    ops_job.refresh_from_db()
    assert ops_job.enabled
    assert ops_job.next_run_at is not None
    page = html(client.get(_job_url(ops_job)))
    assert "Job enabled." in page
    assert "Run now</button>" in page


def test_admin_toggles_any_job(client: Any, admin_user: Any, ops_job: Job) -> None:
    client.force_login(admin_user)
    assert client.post(_job_url(ops_job, "toggle/")).status_code == 302
    ops_job.refresh_from_db()
    assert not ops_job.enabled


def test_toggle_is_post_only(client: Any, engineer: Any, ops_job: Job) -> None:
    client.force_login(engineer)
    assert client.get(_job_url(ops_job, "toggle/")).status_code == 405
    ops_job.refresh_from_db()
    assert ops_job.enabled


# Starting runs -------------------------------------------------------------------------------


def test_trial_run_is_queued_and_polled(
    client: Any, engineer: Any, dev_job: Job, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_job_url(dev_job, "runs/"), {"trigger": "trial"}, **HTMX)

    content = html(response).strip()
    run = Run.objects.get(job=dev_job)
    assert (run.trigger, run.state, run.requested_by) == (Trigger.TRIAL, RunState.QUEUED, engineer)
    assert run.deliveries == 1
    assert run.enqueued_at is not None
    assert len(callbacks) == 1

    assert content.startswith('<div id="run-status"')
    assert "<html" not in content
    assert 'data-state="queued"' in content
    assert f'hx-get="/ops/runs/{run.pk}/"' in content
    assert POLLS in content
    assert f"Trial run #{run.pk}:" in content
    assert ">Queued</span>" in content


def test_trial_run_without_htmx_redirects_to_the_job(
    client: Any, engineer: Any, dev_job: Job, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_job_url(dev_job, "runs/"), {"trigger": "trial"})
    assert response.status_code == 302
    assert response["Location"] == _job_url(dev_job)
    assert len(callbacks) == 1
    run = Run.objects.get(job=dev_job)
    assert (run.trigger, run.state) == (Trigger.TRIAL, RunState.QUEUED)
    assert "Trial run queued." in html(client.get(response["Location"]))


def test_the_accountable_pm_may_start_a_trial_run(
    client: Any, pm: Any, dev_job: Job, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(pm)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_job_url(dev_job, "runs/"), {"trigger": "trial"}, **HTMX)
    assert POLLS in html(response)
    assert len(callbacks) == 1
    assert Run.objects.get(job=dev_job).requested_by == pm


@pytest.mark.parametrize("extra", [{}, HTMX], ids=["page", "htmx"])
def test_run_now_on_a_dev_initiative_is_refused(
    client: Any,
    engineer: Any,
    dev_job: Job,
    django_capture_on_commit_callbacks: Any,
    extra: dict[str, str],
) -> None:
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_job_url(dev_job, "runs/"), {"trigger": "manual"}, **extra)
    content = html(response, 409)
    if not extra:
        assert REFUSED in content  # the friendly page
    assert "is not active in Ops (dev, active)." in content
    assert not callbacks
    assert not Run.objects.filter(job=dev_job).exists()


def test_run_now_in_ops_is_queued(
    client: Any, engineer: Any, ops_job: Job, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_job_url(ops_job, "runs/"), {"trigger": "manual"}, **HTMX)
    run = ops_job.runs.get(trigger=Trigger.MANUAL)
    assert run.state == RunState.QUEUED
    assert len(callbacks) == 1
    content = html(response)
    assert f"Run now #{run.pk}:" in content
    assert POLLS in content


def test_run_start_is_post_only(client: Any, engineer: Any, dev_job: Job) -> None:
    client.force_login(engineer)
    assert client.get(_job_url(dev_job, "runs/")).status_code == 405
    assert not Run.objects.filter(job=dev_job).exists()


# Run status ----------------------------------------------------------------------------------


def test_run_status_polls_until_the_run_is_finished(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    run = services.run_request(job=ops_job, user=engineer, trigger=Trigger.MANUAL)
    client.force_login(engineer)
    url = f"/ops/runs/{run.pk}/"

    queued = html(client.get(url, **HTMX))
    assert 'data-state="queued"' in queued
    assert POLLS in queued
    assert f'hx-get="{url}"' in queued
    assert "this updates by itself" in queued

    outcome = services.run_execute(run_id=run.pk, worker="tests")
    assert outcome.state == RunState.SUCCEEDED

    done = html(client.get(url, **HTMX))
    assert 'data-state="succeeded"' in done
    assert ">Succeeded</span>" in done
    assert "value <strong>1.0000</strong> %" in done  # one initiative active in Ops
    assert "hx-trigger" not in done
    assert "hx-get" not in done
    assert "this updates by itself" not in done


def test_run_status_of_a_failed_run_shows_the_error(
    client: Any, engineer: Any, dev_job: Job
) -> None:
    run = services.run_request(job=dev_job, user=engineer, trigger=Trigger.TRIAL)
    claimed = services.run_start(run_id=run.pk, worker="tests")
    assert claimed is not None
    services.run_fail(run=claimed, error="Warehouse said no", retry=False)

    client.force_login(engineer)
    content = html(client.get(f"/ops/runs/{run.pk}/", **HTMX))
    assert 'data-state="failed"' in content
    assert '<p class="errorlist">Warehouse said no</p>' in content
    assert "hx-trigger" not in content


def test_run_status_of_an_unknown_run_is_404(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    assert client.get("/ops/runs/999999/").status_code == 404


# Schedule preview ----------------------------------------------------------------------------


def test_preview_of_a_valid_cron_gives_five_times(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    before = timezone.now()
    content = html(
        client.get("/ops/schedule-preview/", {"schedule_kind": "cron", "cron": "*/15 * * * *"})
    )
    assert content.strip().startswith('<div id="schedule-preview"')
    assert "errorlist" not in content
    times = _preview_times(content)
    assert len(times) == 5
    assert times[0] > before
    assert all(t.minute % 15 == 0 and t.second == 0 for t in times)
    assert all(b - a == dt.timedelta(minutes=15) for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize(
    ("cron", "error"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("0 0 * * 8", "is not a valid cron expression"),
        ("*/0 * * * *", "is not a valid cron expression"),
        ("every day", "five fields"),
        ("* * * * * *", "five fields"),
        ("", "A cron expression is required."),
        ("0 0 30 2 *", "failed to find next date"),
    ],
)
def test_preview_of_an_invalid_cron_gives_the_error(
    client: Any, engineer: Any, cron: str, error: str
) -> None:
    client.force_login(engineer)
    content = html(client.get("/ops/schedule-preview/", {"schedule_kind": "cron", "cron": cron}))
    assert '<p class="errorlist">' in content
    assert error in content
    assert _preview_times(content) == []


def test_preview_of_an_interval(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    before = timezone.now()
    content = html(
        client.get(
            "/ops/schedule-preview/", {"schedule_kind": "interval", "interval_seconds": "600"}
        )
    )
    times = _preview_times(content)
    assert len(times) == 5
    assert before < times[0] <= timezone.now() + dt.timedelta(seconds=601)
    assert all(b - a == dt.timedelta(seconds=600) for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("abc", "An interval is required."),
        ("", "An interval is required."),
        ("-5", "An interval is required."),
        ("1.5", "An interval is required."),
        ("1e9", "An interval is required."),
        ("٣٠٠", "An interval is required."),  # Arabic-Indic digits
        ("５", "An interval is required."),  # full-width digit
        ("9" * 400, "between 10 seconds and 366 days"),
        ("5", "between 10 seconds and 366 days"),
        ("0", "between 10 seconds and 366 days"),
    ],
)
def test_preview_of_a_garbage_interval_does_not_fail(
    client: Any, engineer: Any, raw: str, error: str
) -> None:
    client.force_login(engineer)
    content = html(
        client.get("/ops/schedule-preview/", {"schedule_kind": "interval", "interval_seconds": raw})
    )
    assert '<p class="errorlist">' in content
    assert error in content
    assert _preview_times(content) == []


def test_preview_of_an_unknown_schedule_kind(client: Any, engineer: Any) -> None:
    client.force_login(engineer)
    content = html(client.get("/ops/schedule-preview/", {"schedule_kind": "weekly"}))
    assert "The schedule is a cron expression or an interval." in content


def test_ops_pages_need_a_login(client: Any, ops_job: Job) -> None:
    run = ops_job.runs.first()
    assert run is not None
    for url in (
        "/ops/",
        _job_url(ops_job),
        f"/ops/runs/{run.pk}/",
        "/ops/schedule-preview/?schedule_kind=cron&cron=*/5+*+*+*+*",
        f"/ops/kpis/{ops_job.kpi_id}/job/",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
