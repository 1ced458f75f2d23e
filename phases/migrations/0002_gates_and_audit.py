from __future__ import annotations

from typing import Any

from django.db import migrations

from bizdevops.db import append_only_trigger

GATES = [
    {
        "code": "biz-to-dev",
        "name": "Biz → Dev",
        "from_phase": "biz",
        "to_phase": "dev",
        "criteria": [
            ("problem_and_requirements", "Business problem and requirements written", "auto", ""),
            ("use_case_and_algorithm", "Use case and algorithm translation written", "auto", ""),
            ("data_feasibility_confirmed", "Data feasibility confirmed", "manual", "team"),
            ("success_kpi_with_target", "At least one success KPI with a target", "auto", ""),
            (
                "team_has_engineer_and_scientist",
                "Team has a data engineer and a data scientist",
                "auto",
                "",
            ),
            (
                "business_signoff",
                "Business sign-off by a stakeholder of the business unit",
                "manual",
                "unit_stakeholder",
            ),
        ],
    },
    {
        "code": "dev-to-ops",
        "name": "Dev → Ops",
        "from_phase": "dev",
        "to_phase": "ops",
        "criteria": [
            (
                "iteration_with_feedback",
                "At least one iteration with business feedback recorded",
                "auto",
                "",
            ),
            (
                "results_accepted",
                "Results accepted by the business",
                "manual",
                "unit_stakeholder",
            ),
            (
                "ops_owner_on_team",
                "An ops owner (data engineer or devops engineer) on the team",
                "auto",
                "",
            ),
        ],
    },
]


def seed_gates(apps: Any, schema_editor: Any) -> None:
    Gate = apps.get_model("phases", "Gate")
    Criterion = apps.get_model("phases", "Criterion")
    for spec in GATES:
        gate, _ = Gate.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "from_phase": spec["from_phase"],
                "to_phase": spec["to_phase"],
            },
        )
        for position, (code, title, kind, policy) in enumerate(spec["criteria"], start=1):
            Criterion.objects.get_or_create(
                code=code,
                defaults={
                    "gate": gate,
                    "title": title,
                    "kind": kind,
                    "check_name": code if kind == "auto" else "",
                    "tick_policy": policy,
                    "position": position * 10,
                },
            )


def unseed_gates(apps: Any, schema_editor: Any) -> None:
    apps.get_model("phases", "Criterion").objects.all().delete()
    apps.get_model("phases", "Gate").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("phases", "0001_initial")]

    operations = [
        migrations.RunPython(seed_gates, unseed_gates),
        append_only_trigger("phases_gatedecision"),
    ]
