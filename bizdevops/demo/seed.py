"""Demo data for `manage.py seed_demo`: realistic initiatives in every phase and status,
built through the same services a user would use."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from bizdevops.demo import warehouse
from bizdevops.roles import Role
from initiatives import services
from initiatives.models import BusinessUnit, Initiative, TeamRole
from jobs import services as job_services
from jobs.models import DataSource, DataSourceKind, ScheduleKind, SourceKind, Trigger
from kpis import services as kpi_services
from phases import services as phase_services
from phases.models import Criterion, Decision

WAREHOUSE = "Demo warehouse"
DEMO_PASSWORD = "demo"  # noqa: S105  (demo users only exist with DEBUG on)

DEMO_USERS: list[tuple[str, str, str, Role | None]] = [
    ("pm", "Paula", "Meyer", Role.PROGRAM_MANAGER),
    ("pm2", "Omar", "Haddad", Role.PROGRAM_MANAGER),
    ("scientist", "Sofia", "Rossi", Role.DATA_SCIENTIST),
    ("engineer", "Erik", "Larsen", Role.DATA_ENGINEER),
    ("devops", "Dana", "Kim", Role.DEVOPS_ENGINEER),
    ("stakeholder", "Sam", "Becker", Role.BUSINESS_STAKEHOLDER),
    ("admin", "Ada", "Admin", None),
]

UNITS = {
    "Marketing": "Campaigns, offers and customer retention.",
    "Fraud": "Card fraud and financial crime prevention.",
    "Risk": "Credit and market risk.",
    "Shop floor": "Manufacturing plants and their machines.",
}


@dataclass
class Demo:
    title: str
    unit: str
    target: str  # "biz", "biz-ready", "dev", "dev-hold", "ops", "ops-hold", "cancelled", "retired"
    story: dict[str, str]
    kpi: dict[str, Any]
    iterations: list[tuple[int, str, str]] = field(default_factory=list)  # days ago, tried, said
    # SQL on the demo warehouse per KPI name; KPIs with SQL get a job (every minute).
    jobs: dict[str, str] = field(default_factory=dict)
    more_kpis: list[dict[str, Any]] = field(default_factory=list)
    accountable: str = "pm"
    handover_to: str | None = None
    # Per KPI name: the value as of a moment (drawn with the given generator), pushed hourly
    # for the last HISTORY_DAYS days when the KPI is defined. For KPIs with a job, the model
    # of the job's own query (`warehouse.history`), so the jobs go on in the same band.
    history: dict[str, Callable[[dt.datetime, random.Random], float]] = field(default_factory=dict)


DEMOS = [
    Demo(
        "Card-fraud detection",
        "Fraud",
        "ops",
        {
            "business_problem": "Card fraud cost us 2.1 M EUR last year; rules catch only 55 %.",
            "business_requirements": "Score each card payment within 150 ms; at most 1 false "
            "alarm in 200 payments; analysts must see why a payment was flagged.",
            "use_case": "Block or step-up-authenticate risky card payments before approval.",
            "algorithm_translation": "Binary classification (fraud / not fraud) on payment, "
            "merchant and device features; a threshold chosen on the cost of each error type.",
            "data_feasibility": "24 months of labelled transactions with chargeback outcomes in "
            "the payments warehouse.",
        },
        {
            "name": "Fraud caught",
            "unit": "%",
            "target": 80,
            "warning_threshold": 70,
            "critical_threshold": 60,
        },
        [
            (40, "Logistic regression baseline on 25 features.", "Recall too low on e-commerce."),
            (
                26,
                "Gradient boosting with merchant history features.",
                "Good; analysts want reasons per flag.",
            ),
            (12, "Added SHAP reasons to each alert.", "Accepted for production."),
        ],
        jobs={
            "Fraud caught": warehouse.FRAUD_CAUGHT_SQL,
            "False alarms": warehouse.FALSE_ALARM_SQL,
        },
        history={
            "Fraud caught": partial(warehouse.history, warehouse.FRAUD_CAUGHT_SQL),
            "False alarms": partial(warehouse.history, warehouse.FALSE_ALARM_SQL),
        },
        more_kpis=[
            {
                "name": "False alarms",
                "unit": "%",
                "direction": "lower",
                "target": 10,
                "warning_threshold": 15,
                "critical_threshold": 25,
                "description": "Share of flagged payments that were not fraud (last hour).",
            },
        ],
    ),
    Demo(
        "Customer churn prediction",
        "Marketing",
        "dev",
        {
            "business_problem": "12 % of subscription customers leave each year, most without "
            "talking to us first.",
            "business_requirements": "A weekly list of customers likely to leave in the next 60 "
            "days, with the main reason, for the retention team.",
            "use_case": "Retention calls and offers for the top 500 customers at risk each week.",
            "algorithm_translation": "Survival / classification model on usage, billing and "
            "support history; ranking by expected lost revenue.",
            "data_feasibility": "CRM, billing and support tickets are in the warehouse since 2022.",
        },
        {
            "name": "Monthly churn rate",
            "unit": "%",
            "direction": "lower",
            "target": 0.8,
            "warning_threshold": 1.0,
            "critical_threshold": 1.3,
        },
        [
            (9, "First model on billing data only.", "Useful, but misses support complaints."),
            (2, "Added support ticket features.", ""),
        ],
        jobs={"Monthly churn rate": warehouse.CHURN_SQL},
        # Measured by the data team from the warehouse while the model is built.
        history={"Monthly churn rate": partial(warehouse.history, warehouse.CHURN_SQL)},
    ),
    Demo(
        "Predictive maintenance on the shop floor",
        "Shop floor",
        "ops-hold",
        {
            "business_problem": "Unplanned stops of the CNC line cost 40 production hours a month.",
            "business_requirements": "Warn maintenance 24 hours before a likely failure.",
            "use_case": "Plan maintenance windows from failure warnings per machine.",
            "algorithm_translation": "Anomaly detection and remaining-useful-life regression on "
            "vibration and temperature sensor streams.",
            "data_feasibility": "Sensor readings every 10 s from 36 machines, plus the "
            "maintenance log.",
        },
        {
            "name": "Unplanned downtime",
            "unit": "h",
            "direction": "lower",
            "target": 2,
            "warning_threshold": 3,
            "critical_threshold": 4,
            "description": "Hours of unplanned stops of the line's machines in the last 24 hours.",
        },
        [
            (60, "Isolation forest on vibration data.", "Too many false warnings at night shift."),
            (45, "RUL regression with temperature.", "Maintenance lead accepts it."),
        ],
        accountable="pm2",
        handover_to="pm",
        jobs={"Unplanned downtime": warehouse.DOWNTIME_SQL},
        history={"Unplanned downtime": partial(warehouse.history, warehouse.DOWNTIME_SQL)},
    ),
    Demo(
        "Credit-risk scoring for small businesses",
        "Risk",
        "biz-ready",
        {
            "business_problem": "Manual credit checks for small-business loans take 5 days.",
            "business_requirements": "A same-day decision for loans under 50 k EUR within the "
            "risk appetite; explainable to the regulator.",
            "use_case": "Automatic approve / refer decisions for small loans.",
            "algorithm_translation": "Probability-of-default model (scorecard) on account and "
            "bureau data.",
            "data_feasibility": "Account history in the core banking system; bureau data via "
            "the existing contract.",
        },
        {
            "name": "Decision time",
            "unit": "h",
            "direction": "lower",
            "target": 8,
            "warning_threshold": 24,
            "critical_threshold": 48,
            "description": "Hours from application to credit decision; today the manual "
            "process, the baseline the initiative is to beat.",
        },
        history={"Decision time": lambda moment, rng: max(60.0, rng.gauss(118, 8))},
    ),
    Demo(
        "Next-best-offer recommendations",
        "Marketing",
        "biz",
        {
            "business_problem": "Offers in the app are the same for every customer; click rate "
            "is 0.4 %.",
            "business_requirements": "",
            "use_case": "",
            "algorithm_translation": "",
            "data_feasibility": "",
        },
        {},
        accountable="pm2",
    ),
    Demo(
        "Anti-money-laundering alert triage",
        "Fraud",
        "dev-hold",
        {
            "business_problem": "Analysts close 95 % of AML alerts as false positives.",
            "business_requirements": "Rank alerts so that true cases come first; never auto-close.",
            "use_case": "Prioritised alert queue for AML analysts.",
            "algorithm_translation": "Learning-to-rank on alert, customer and network features.",
            "data_feasibility": "Three years of alert outcomes in the case management system.",
        },
        {"name": "True cases in top 10 %", "unit": "%", "target": 60},
        [(5, "Ranking baseline with gradient boosting.", "")],
    ),
    Demo(
        "Scrap-rate forecasting",
        "Shop floor",
        "cancelled",
        {
            "business_problem": "Scrap in the paint shop varies between 2 and 9 %.",
            "business_requirements": "Forecast tomorrow's scrap rate per line.",
            "use_case": "Adjust staffing and material orders.",
            "algorithm_translation": "Time-series regression on process parameters.",
            "data_feasibility": "Process parameters are only logged on paper for two lines.",
        },
        {"name": "Scrap rate", "unit": "%", "direction": "lower", "target": 3},
    ),
    Demo(
        "Marketing mix model 2025",
        "Marketing",
        "retired",
        {
            "business_problem": "The media budget split is decided by habit.",
            "business_requirements": "Quarterly budget recommendations per channel.",
            "use_case": "Budget planning for 2025.",
            "algorithm_translation": "Bayesian marketing mix model on weekly spend and sales.",
            "data_feasibility": "Weekly spend and sales since 2021 in the marketing data mart.",
        },
        {
            "name": "Return on ad spend",
            "unit": "x",
            "target": 3.5,
            "warning_threshold": 3,
            "critical_threshold": 2.5,
        },
        [(200, "Bayesian MMM with adstock.", "Plausible; use it for the 2025 plan.")],
        accountable="pm2",
        jobs={"Return on ad spend": "SELECT 3.4"},
        history={"Return on ad spend": lambda moment, rng: rng.gauss(3.4, 0.05)},
    ),
]


def _users(log: list[str]) -> dict[str, Any]:
    User = get_user_model()
    users = {}
    for username, first, last, role in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(
                username=username,
                password=DEMO_PASSWORD,
                first_name=first,
                last_name=last,
                email=f"{username}@example.com",
                is_staff=role is None,
                is_superuser=role is None,
            )
            if role is not None:
                user.groups.add(Group.objects.get(name=role.value))
            log.append(f"user {username} / {DEMO_PASSWORD}")
        users[username] = user
    return users


def _units(admin: Any, stakeholder: Any) -> dict[str, BusinessUnit]:
    units = {}
    for name, description in UNITS.items():
        unit = BusinessUnit.objects.filter(name=name).first()
        if unit is None:
            unit = services.business_unit_save(
                user=admin, name=name, description=description, stakeholders=[stakeholder]
            )
        units[name] = unit
    return units


def _decide(initiative: Initiative, decision: Decision, rationale: str, user: Any) -> Initiative:
    phase_services.gate_decide(
        initiative=initiative, decision=decision, rationale=rationale, user=user
    )
    initiative.refresh_from_db()
    return initiative


def _register_jobs(initiative: Initiative, demo: Demo, users: dict[str, Any]) -> None:
    """The engineer registers a job per KPI on the demo warehouse and trial-runs it (the
    Dev → Ops gate needs a successful trial run for every KPI)."""
    engineer = users["engineer"]
    source = DataSource.objects.get(name=WAREHOUSE)
    for kpi in initiative.kpis.all():
        sql = demo.jobs.get(kpi.name)
        if sql is None:
            continue
        job = job_services.job_register(
            kpi=kpi,
            user=engineer,
            schedule_kind=ScheduleKind.CRON,
            cron="* * * * *",
            source_kind=SourceKind.SQL,
            data_source=source,
            sql=sql,
            timeout_seconds=20,
        )
        run = job_services.run_request(job=job, user=engineer, trigger=Trigger.TRIAL)
        job_services.run_execute(run_id=run.pk, worker="seed_demo")


HISTORY_DAYS = 30


def _history(initiative: Initiative, demo: Demo, admin: Any) -> None:
    """Hourly values for the last weeks up to this minute, pushed like a data platform would
    (origin: API), so that the dashboards and trend charts have something to show before the
    jobs have run for long."""
    now = timezone.now().replace(second=0, microsecond=0)
    hour = now.replace(minute=0)
    for kpi in initiative.kpis.all():
        model = demo.history.get(kpi.name)
        if model is None:
            continue
        rng = random.Random(kpi.name)  # noqa: S311  (demo data, not security)
        moments = [hour - dt.timedelta(hours=h) for h in range(HISTORY_DAYS * 24, 0, -1)]
        moments += [hour] if hour == now else [hour, now]
        items = [(moment, round(model(moment, rng), 3)) for moment in moments]
        kpi_services.measurements_push(kpi=kpi, user=admin, items=items)


def _warehouse(admin: Any, log: list[str]) -> None:
    existed = warehouse.path().exists()
    added = warehouse.tick()
    # Catching up the minutes since the last run is no new demo data; a new file is.
    if not existed:
        log.append(f"demo warehouse rows for {added} minutes at {warehouse.path()}")
    if not DataSource.objects.filter(name=WAREHOUSE).exists():
        job_services.data_source_save(
            user=admin,
            name=WAREHOUSE,
            kind=DataSourceKind.DATABASE,
            url=warehouse.url(),
            description="Demo: card transactions, customer events, machine sensor readings.",
        )
        log.append(f"data source {WAREHOUSE}")


def _build(demo: Demo, users: dict[str, Any], unit: BusinessUnit) -> Initiative:
    pm = users[demo.accountable]
    stakeholder = users["stakeholder"]
    initiative = services.initiative_create(
        user=users["admin"],
        accountable=pm,
        title=demo.title,
        business_unit=unit,
        **cast(dict[str, Any], demo.story),
    )
    if demo.handover_to:
        services.initiative_hand_over(
            initiative=initiative,
            to=users[demo.handover_to],
            reason=f"{pm.first_name} moves to the data platform programme.",
            user=pm,
        )
        pm = users[demo.handover_to]
        initiative.refresh_from_db()
    for kpi in [demo.kpi, *demo.more_kpis] if demo.kpi else []:
        kpi_services.kpi_define(initiative=initiative, user=pm, **kpi)
    _history(initiative, demo, users["admin"])
    if demo.target == "biz":
        return initiative
    services.member_add(
        initiative=initiative, member=users["engineer"], role=TeamRole.DATA_ENGINEER, user=pm
    )
    services.member_add(
        initiative=initiative, member=users["scientist"], role=TeamRole.DATA_SCIENTIST, user=pm
    )
    services.member_add(
        initiative=initiative, member=stakeholder, role=TeamRole.STAKEHOLDER, user=pm
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="data_feasibility_confirmed"),
        user=users["engineer"],
        note="Checked the tables and their history with the data owners.",
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="business_signoff"),
        user=stakeholder,
        note="Agreed in the business unit's steering meeting.",
    )
    if demo.target == "biz-ready":
        return initiative
    initiative = _decide(initiative, Decision.GO, "Business aligned, data available.", pm)
    today = timezone.localdate()
    for days_ago, tried, said in demo.iterations:
        services.iteration_add(
            initiative=initiative,
            user=users["scientist"],
            tried=tried,
            business_feedback=said,
            happened_on=today - dt.timedelta(days=days_ago),
        )
    _register_jobs(initiative, demo, users)
    if demo.target == "dev":
        return initiative
    if demo.target == "dev-hold":
        return _decide(initiative, Decision.HOLD, "Analysts are busy with the audit.", pm)
    if demo.target == "cancelled":
        return _decide(initiative, Decision.KILL, "The data is not collected digitally.", pm)
    services.member_add(
        initiative=initiative, member=users["devops"], role=TeamRole.DEVOPS_ENGINEER, user=pm
    )
    phase_services.criterion_tick(
        initiative=initiative,
        criterion=Criterion.objects.get(code="results_accepted"),
        user=stakeholder,
        note="Results reviewed with the team leads.",
    )
    initiative = _decide(initiative, Decision.GO, "The business accepted the results.", pm)
    if demo.target == "ops-hold":
        return _decide(initiative, Decision.HOLD, "Sensor gateway replacement this month.", pm)
    if demo.target == "retired":
        return _decide(initiative, Decision.RETIRE, "Replaced by the 2026 model.", pm)
    return initiative


def seed(log: list[str]) -> None:
    """Create what is missing; existing users, units and initiatives are left as they are."""
    users = _users(log)
    units = _units(users["admin"], users["stakeholder"])
    _warehouse(users["admin"], log)
    for demo in DEMOS:
        if Initiative.objects.filter(title=demo.title).exists():
            continue
        initiative = _build(demo, users, units[demo.unit])
        log.append(f"{initiative.key} {initiative.title}: {initiative.phase} / {initiative.status}")
