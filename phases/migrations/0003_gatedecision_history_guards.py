"""The database refuses UPDATE and DELETE on SQLite too, and TRUNCATE on PostgreSQL (bizdevops.db)."""

from __future__ import annotations

from django.db import migrations

from bizdevops.db import history_guards


class Migration(migrations.Migration):
    dependencies = [("phases", "0002_gates_and_audit")]

    operations = [
        history_guards("phases_gatedecision"),
    ]
