"""Alerts are history: the database refuses UPDATE, DELETE and TRUNCATE (bizdevops.db)."""

from __future__ import annotations

from django.db import migrations

from bizdevops.db import append_only_trigger, history_guards


class Migration(migrations.Migration):
    dependencies = [("notifications", "0003_alerts_drop_foreign_keys")]

    operations = [
        append_only_trigger("notifications_alert"),
        history_guards("notifications_alert"),
    ]
