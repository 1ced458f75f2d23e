"""The tables moved from `kpis` get this app's names, and a job's interval gets the range the
services have always enforced (10 seconds to 366 days) as a database constraint."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("kpis", "0006_jobs_moved_to_their_own_app"),
    ]

    operations = [
        migrations.AlterModelTable(name="datasource", table=None),
        migrations.AlterModelTable(name="job", table=None),
        migrations.AlterModelTable(name="run", table=None),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("interval_seconds__isnull", True),
                    models.Q(("interval_seconds__gte", 10), ("interval_seconds__lte", 31622400)),
                    _connector="OR",
                ),
                name="job_interval_range",
            ),
        ),
    ]
