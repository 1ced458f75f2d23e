"""The foreign keys that 0002 turned into plain data go, in a migration of their own: the
schema change is kept apart from the data change, as Django's documentation advises for
PostgreSQL. (Going back is possible on a database without alerts only: the old foreign key to
the initiative cannot be null.)"""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_alerts_hold_plain_data")]

    operations = [
        migrations.RemoveField(model_name="alert", name="initiative"),
        migrations.RemoveField(model_name="alert", name="kpi"),
        migrations.RemoveField(model_name="alert", name="run"),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(fields=["object_type", "object_id"], name="alert_object"),
        ),
    ]
