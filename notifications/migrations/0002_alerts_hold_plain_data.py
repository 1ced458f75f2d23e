"""Alerts keep plain data (subject, links, the object's type and id) instead of foreign keys
to initiatives, KPIs and runs: the notifications app knows nothing of the apps that raise
alerts. Every existing alert keeps what it pointed at, as text."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def to_plain_data(apps: Any, schema_editor: Any) -> None:
    Alert = apps.get_model("notifications", "Alert")
    Run = apps.get_model("kpis", "Run")
    jobs = dict(Run.objects.values_list("pk", "job_id"))
    for alert in Alert.objects.all().iterator():
        key = f"BDO-{alert.initiative_id}"
        alert.subject = key
        alert.url = f"/initiatives/{key}/dashboard/"
        if alert.run_id is not None:
            alert.object_type, alert.object_id = "run", str(alert.run_id)
            if alert.run_id in jobs:
                alert.detail_label = "job"
                alert.detail_url = f"/ops/jobs/{jobs[alert.run_id]}/"
        elif alert.kpi_id is not None:
            alert.object_type, alert.object_id = "kpi", str(alert.kpi_id)
        else:
            alert.object_type, alert.object_id = "initiative", str(alert.initiative_id)
        if alert.kind == "run_failed" and not alert.to_status:
            alert.to_status = "failed"
        alert.save()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("kpis", "0005_kpi_last_health"),
    ]

    operations = [
        migrations.AlterField(
            model_name="alert",
            name="kind",
            field=models.CharField(
                help_text="The raiser's name for it, e.g. kpi_status.", max_length=40
            ),
        ),
        migrations.AddField(
            model_name="alert",
            name="subject",
            field=models.CharField(
                blank=True, help_text="e.g. an initiative key.", max_length=200, default=""
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="url",
            field=models.CharField(
                blank=True, help_text="The page the alert is about.", max_length=500, default=""
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="detail_label",
            field=models.CharField(blank=True, max_length=40, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="detail_url",
            field=models.CharField(
                blank=True, help_text="A second link.", max_length=500, default=""
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="object_type",
            field=models.CharField(
                blank=True, help_text="e.g. kpi, run.", max_length=40, default=""
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="object_id",
            field=models.CharField(blank=True, max_length=40, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(to_plain_data, migrations.RunPython.noop),
    ]
