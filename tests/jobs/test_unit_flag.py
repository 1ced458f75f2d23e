"""A named calculation declares the unit of its number (`@calculation(..., unit=...)`); a job
whose calculation returns another unit than its KPI's is flagged in the trial result (the
live state box) and in the "Test query" result. SQL and HTTP sources declare no unit and are
never flagged."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import services
from jobs.models import Job, Run, SourceKind, Trigger
from jobs.sources import CALCULATIONS, unit_mismatch
from kpis import services as kpi_services
from kpis.models import KPI
from tests.helpers import HTMX, html

pytestmark = pytest.mark.django_db

FLAG = "Unit mismatch"


def test_the_registered_calculations_declare_their_units() -> None:
    # Other test modules register calculations of their own (integration.*): only ours here.
    ours = {
        name: calc.unit
        for name, calc in CALCULATIONS.items()
        if name.startswith(("portfolio.", "kpi."))
    }
    assert ours == {
        "portfolio.initiatives_in_ops": "initiatives",
        "portfolio.dev_overdue_percent": "%",
        "portfolio.decisions_last_30_days": "decisions",
        "kpi.hours_since_last_value": "h",
    }


@pytest.mark.parametrize(
    ("calculation", "kpi_unit", "flagged"),
    [
        ("portfolio.dev_overdue_percent", "%", False),
        ("portfolio.dev_overdue_percent", "percent", False),  # one unit, two spellings
        ("portfolio.dev_overdue_percent", " Percent ", False),
        ("kpi.hours_since_last_value", "hours", False),
        ("portfolio.initiatives_in_ops", "Initiatives", False),
        ("portfolio.dev_overdue_percent", "EUR", True),
        ("kpi.hours_since_last_value", "min", True),
        ("portfolio.initiatives_in_ops", "", True),  # a count for a KPI without a unit
    ],
)
def test_unit_mismatch_compares_the_declared_unit_with_the_kpis(
    calculation: str, kpi_unit: str, flagged: bool
) -> None:
    job = Job(source_kind=SourceKind.PYTHON, calculation=calculation)
    warning = unit_mismatch(job, kpi_unit)
    assert bool(warning) is flagged
    if flagged:
        assert calculation in warning
        assert CALCULATIONS[calculation].unit in warning


def test_sources_that_declare_no_unit_are_not_judged() -> None:
    assert unit_mismatch(Job(source_kind=SourceKind.SQL, sql="SELECT 1"), "%") == ""
    assert unit_mismatch(Job(source_kind=SourceKind.HTTP, json_path="$.n"), "%") == ""
    assert unit_mismatch(Job(source_kind=SourceKind.PYTHON, calculation="nope"), "%") == ""


def _trial(job: Job, user: Any) -> Run:
    run = services.run_request(job=job, user=user, trigger=Trigger.TRIAL)
    services.run_execute(run_id=run.pk, worker="tests")
    return Run.objects.get(pk=run.pk)


def test_the_trial_result_flags_a_calculation_in_another_unit(
    client: Any, engineer: Any, ops_job: Job
) -> None:
    # The standard KPI "Fraud caught" is in %, its job counts initiatives.
    assert (ops_job.kpi.unit, ops_job.calculation) == ("%", "portfolio.initiatives_in_ops")
    run = _trial(ops_job, engineer)
    client.force_login(engineer)
    content = html(client.get(f"/ops/runs/{run.pk}/", **HTMX))
    assert 'data-state="succeeded"' in content
    assert (
        '<p class="unit-warning" role="status">Unit mismatch: the calculation '
        "portfolio.initiatives_in_ops returns initiatives, but the KPI is measured in %.</p>"
    ) in content
    # The run itself succeeded: the flag warns, it does not fail the trial.
    assert run.state == "succeeded"


def test_a_matching_unit_is_not_flagged(
    client: Any, engineer: Any, pm: Any, ops_initiative: Any
) -> None:
    kpi = kpi_services.kpi_define(
        initiative=ops_initiative, user=pm, name="Overdue share", unit="percent"
    )
    job = services.job_register(
        kpi=kpi,
        user=engineer,
        schedule_kind="interval",
        interval_seconds=300,
        source_kind="python",
        calculation="portfolio.dev_overdue_percent",
    )
    run = _trial(job, engineer)
    client.force_login(engineer)
    content = html(client.get(f"/ops/runs/{run.pk}/", **HTMX))
    assert 'data-state="succeeded"' in content
    assert FLAG not in content


def test_the_test_result_flags_it_too(client: Any, engineer: Any, ops_kpi: KPI) -> None:
    client.force_login(engineer)
    data = {
        "source_kind": "python",
        "calculation": "portfolio.decisions_last_30_days",
        "schedule_kind": "interval",
        "interval_seconds": 300,
        "timeout_seconds": 30,
        "max_retries": 2,
        "test": "1",
    }
    job = Job.objects.get(kpi=ops_kpi)
    content = html(client.post(f"/ops/jobs/{job.pk}/", data, **HTMX))
    assert 'data-state="ok"' in content
    assert "returns decisions, but the KPI is measured in %." in content
