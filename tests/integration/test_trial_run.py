"""The trial run the Dev → Ops gate needs, executed by a real worker."""

from __future__ import annotations

from initiatives import services as initiative_services
from initiatives.models import Phase, Status
from jobs import services as job_services
from jobs.models import Run, RunState, Trigger
from kpis.models import Measurement
from phases import services as phase_services
from phases.checks import run_check
from phases.models import Criterion, Decision
from tests.factories import decide
from tests.integration.helpers import INTEGRATION, Portfolio, Worker, wait_for
from tests.integration.worker_calculations import ANSWER, ANSWER_VALUE

pytestmark = INTEGRATION

CRITERION = "kpi_jobs_trial_passed"


def test_a_trial_run_on_the_worker_satisfies_the_dev_to_ops_criterion(
    portfolio: Portfolio, worker: Worker
):
    initiative = portfolio.initiative("Fraud scoring", phase=Phase.DEV)
    (kpi,) = initiative.kpis.all()  # "Fraud caught", from the Biz gate
    job = job_services.job_register(
        kpi=kpi,
        user=portfolio.engineer,
        schedule_kind="cron",
        cron="0 6 * * *",
        source_kind="python",
        calculation=ANSWER,
    )
    before = run_check(CRITERION, initiative)
    assert not before.satisfied
    assert "no successful last trial run: fraud caught" in before.explanation.lower()

    run = job_services.run_request(job=job, user=portfolio.engineer, trigger=Trigger.TRIAL)

    wait_for(
        lambda: Run.objects.filter(pk=run.pk, state=RunState.SUCCEEDED).exists(),
        "the trial run to succeed on the worker",
        describe=lambda: Run.objects.filter(pk=run.pk).values("state", "attempt", "error")[0],
    )
    run.refresh_from_db()
    assert (run.trigger, run.attempt, run.worker) == (Trigger.TRIAL, 1, worker.name)
    assert run.value == ANSWER_VALUE
    after = run_check(CRITERION, initiative)
    assert after.satisfied, after.explanation
    assert not Measurement.objects.filter(kpi=kpi).exists()  # a trial only tests the job

    # With the rest of the Dev → Ops gate met, `go` now takes the initiative into Ops.
    initiative_services.iteration_add(
        initiative=initiative,
        user=portfolio.pm,
        tried="Gradient boosting on 40 features",
        business_feedback="Good recall.",
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="results_accepted"),
        user=portfolio.stakeholder,
    )
    initiative = decide(initiative, Decision.GO, portfolio.pm)
    assert (initiative.phase, initiative.status) == (Phase.OPS, Status.ACTIVE)
