"""Data sources, jobs and runs now belong to the `jobs` app (see jobs/migrations/0001): they
leave this app's model state; their tables stay as they are (nothing runs in the database).
A measurement's run is now `jobs.Run`."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kpis", "0005_kpi_last_health"),
        ("jobs", "0001_initial"),
        # The alerts' foreign key to kpis.Run is gone before kpis.Run leaves the state.
        ("notifications", "0003_alerts_drop_foreign_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="measurement",
                    name="run",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="measurements",
                        to="jobs.run",
                    ),
                ),
                migrations.DeleteModel(name="Run"),
                migrations.DeleteModel(name="Job"),
                migrations.DeleteModel(name="DataSource"),
            ],
        ),
    ]
