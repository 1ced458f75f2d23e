from __future__ import annotations

from typing import Any

from django.db import migrations

CODE = "kpi_jobs_trial_passed"


def add_criterion(apps: Any, schema_editor: Any) -> None:
    Gate = apps.get_model("phases", "Gate")
    Criterion = apps.get_model("phases", "Criterion")
    gate = Gate.objects.filter(code="dev-to-ops").first()
    if gate is None:
        return
    Criterion.objects.get_or_create(
        code=CODE,
        defaults={
            "gate": gate,
            "title": "Every KPI has an enabled recalculation job whose last trial run succeeded",
            "kind": "auto",
            "check_name": CODE,
            "tick_policy": "",
            "position": 25,
        },
    )


def remove_criterion(apps: Any, schema_editor: Any) -> None:
    apps.get_model("phases", "Criterion").objects.filter(code=CODE).delete()


class Migration(migrations.Migration):
    dependencies = [("kpis", "0002_jobs_and_runs"), ("phases", "0002_gates_and_audit")]

    operations = [migrations.RunPython(add_criterion, remove_criterion)]
