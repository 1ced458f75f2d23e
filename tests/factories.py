from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from bizdevops.roles import Role
from initiatives import services as initiative_services
from initiatives.models import BusinessUnit, Initiative, TeamRole
from jobs import services as job_services
from kpis import services as kpi_services
from phases import services as phase_services
from phases.models import Criterion, Decision

User = get_user_model()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        for role in extracted or ():
            self.groups.add(Group.objects.get(name=Role(role).value))


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Unit {n}")


def make_initiative(pm: Any, unit: BusinessUnit, **kwargs: Any) -> Initiative:
    kwargs.setdefault("title", "Card-fraud detection")
    return initiative_services.initiative_create(user=pm, business_unit=unit, **kwargs)


FULL_STORY = {
    "business_problem": "Card fraud costs 2 M EUR a year.",
    "business_requirements": "Flag fraud within 200 ms with few false alarms.",
    "use_case": "Score every card transaction before authorisation.",
    "algorithm_translation": "Binary classification on transaction features.",
    "data_feasibility": "Two years of labelled transactions in the warehouse.",
}


def pass_biz_gate(
    initiative: Initiative, *, pm: Any, stakeholder: Any, scientist: Any, engineer: Any
) -> Initiative:
    """Make every Biz → Dev criterion hold, through the services."""
    initiative = initiative_services.initiative_update(initiative=initiative, user=pm, **FULL_STORY)
    initiative_services.member_add(
        initiative=initiative, member=scientist, role=TeamRole.DATA_SCIENTIST, user=pm
    )
    initiative_services.member_add(
        initiative=initiative, member=engineer, role=TeamRole.DATA_ENGINEER, user=pm
    )
    kpi_services.kpi_define(
        initiative=initiative, user=pm, name="Fraud caught", unit="%", target=90
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="data_feasibility_confirmed"),
        user=pm,
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="business_signoff"),
        user=stakeholder,
    )
    return initiative


def trial_run_every_kpi(initiative: Initiative, *, user: Any) -> None:
    """Register a Python-calculation job for every KPI without one, and trial-run it."""
    from jobs.models import Trigger

    for kpi in initiative.kpis.all():
        job = getattr(kpi, "job", None) or job_services.job_register(
            kpi=kpi,
            user=user,
            schedule_kind="interval",
            interval_seconds=300,
            source_kind="python",
            calculation="portfolio.initiatives_in_ops",
        )
        run = job_services.run_request(job=job, user=user, trigger=Trigger.TRIAL)
        job_services.run_execute(run_id=run.pk, worker="tests")


def pass_dev_gate(
    initiative: Initiative, *, pm: Any, stakeholder: Any, engineer: Any = None
) -> Initiative:
    """Make every Dev → Ops criterion hold (the initiative must be in Dev, an engineer on the
    team: the first active data or devops engineer runs the trials)."""
    initiative_services.iteration_add(
        initiative=initiative,
        user=pm,
        tried="Gradient boosting on 40 features",
        business_feedback="Good recall; fewer false alarms please.",
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="results_accepted"),
        user=stakeholder,
    )
    if engineer is None:
        engineer = (
            initiative.memberships.filter(
                left_at__isnull=True, role__in=[TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER]
            )
            .select_related("user")
            .first()
            .user
        )
    trial_run_every_kpi(initiative, user=engineer)
    return initiative


def decide(initiative: Initiative, decision: Decision | str, user: Any) -> Initiative:
    phase_services.gate_decide(
        initiative=initiative, decision=decision, rationale=f"{decision} for the test", user=user
    )
    initiative.refresh_from_db()
    return initiative
