"""The data sources, jobs and runs move from the `kpis` app to this one without losing a row.

The first step only tells Django's model state that the three models now belong here, still
on their old tables (`SeparateDatabaseAndState`: nothing happens in the database); `kpis`
0006 removes them from its state. 0002 then renames the tables. Content types (and with them
permissions and admin log entries) follow the models.
"""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MOVED = ("datasource", "job", "run")


def move_content_types(apps: Any, schema_editor: Any) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    alias = schema_editor.connection.alias
    for model in MOVED:
        if ContentType.objects.using(alias).filter(app_label="jobs", model=model).exists():
            continue  # made already (a database migrated in several steps): leave the old one
        ContentType.objects.using(alias).filter(app_label="kpis", model=model).update(
            app_label="jobs"
        )


def return_content_types(apps: Any, schema_editor: Any) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    alias = schema_editor.connection.alias
    for model in MOVED:
        if ContentType.objects.using(alias).filter(app_label="kpis", model=model).exists():
            continue
        ContentType.objects.using(alias).filter(app_label="jobs", model=model).update(
            app_label="kpis"
        )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("kpis", "0005_kpi_last_health"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="DataSource",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100, unique=True)),
                        (
                            "kind",
                            models.CharField(
                                choices=[("database", "Database (SQL)"), ("http", "HTTP base URL")],
                                max_length=10,
                            ),
                        ),
                        (
                            "url_env",
                            models.CharField(
                                blank=True,
                                help_text="Name of an environment variable that holds the URL (preferred in production).",
                                max_length=100,
                            ),
                        ),
                        ("url_encrypted", models.TextField(blank=True, editable=False)),
                        (
                            "display_url",
                            models.CharField(
                                blank=True,
                                editable=False,
                                help_text="The URL without credentials.",
                                max_length=300,
                            ),
                        ),
                        (
                            "allow_private_addresses",
                            models.BooleanField(
                                default=False,
                                help_text="HTTP only: allow private, loopback and link-local addresses (internal APIs).",
                            ),
                        ),
                        ("description", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "kpis_datasource",
                        "ordering": ["name"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("url_env", ""), _negated=True),
                                    models.Q(("url_encrypted", ""), _negated=True),
                                    _connector="OR",
                                ),
                                name="datasource_has_url",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Job",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "schedule_kind",
                            models.CharField(
                                choices=[
                                    ("cron", "Cron expression"),
                                    ("interval", "Fixed interval"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("cron", models.CharField(blank=True, max_length=100)),
                        ("interval_seconds", models.PositiveIntegerField(blank=True, null=True)),
                        (
                            "source_kind",
                            models.CharField(
                                choices=[
                                    ("sql", "SQL query"),
                                    ("http", "HTTP GET + JSON path"),
                                    ("python", "Python calculation"),
                                ],
                                max_length=10,
                            ),
                        ),
                        (
                            "sql",
                            models.TextField(
                                blank=True, help_text="One SELECT returning exactly one number."
                            ),
                        ),
                        ("http_path", models.CharField(blank=True, max_length=500)),
                        ("json_path", models.CharField(blank=True, max_length=200)),
                        ("calculation", models.CharField(blank=True, max_length=100)),
                        ("timeout_seconds", models.PositiveIntegerField(default=30)),
                        ("max_retries", models.PositiveSmallIntegerField(default=2)),
                        ("enabled", models.BooleanField(default=True)),
                        ("next_run_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "data_source",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="jobs",
                                to="jobs.datasource",
                            ),
                        ),
                        (
                            "kpi",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="job",
                                to="kpis.kpi",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "kpis_job",
                        "ordering": ["kpi"],
                    },
                ),
                migrations.CreateModel(
                    name="Run",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("scheduled_for", models.DateTimeField()),
                        (
                            "trigger",
                            models.CharField(
                                choices=[
                                    ("schedule", "Schedule"),
                                    ("manual", "Run now"),
                                    ("trial", "Trial run"),
                                ],
                                default="schedule",
                                max_length=10,
                            ),
                        ),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("skipped", "Skipped"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        (
                            "attempt",
                            models.PositiveSmallIntegerField(
                                default=0, help_text="Executions started."
                            ),
                        ),
                        (
                            "deliveries",
                            models.PositiveSmallIntegerField(
                                default=0,
                                help_text="Times the run was sent to the workers (the reaper resends).",
                            ),
                        ),
                        ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("value", models.FloatField(blank=True, null=True)),
                        ("error", models.TextField(blank=True)),
                        ("worker", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "job",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="runs",
                                to="jobs.job",
                            ),
                        ),
                        (
                            "requested_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "kpis_run",
                        "ordering": ["-scheduled_for", "-id"],
                    },
                ),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(
                        condition=models.Q(("enabled", True)),
                        fields=["next_run_at"],
                        name="job_due",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("timeout_seconds__gte", 1), ("timeout_seconds__lte", 3600)
                        ),
                        name="job_timeout_range",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("max_retries__lte", 10)), name="job_retries_range"
                    ),
                ),
                migrations.AddIndex(
                    model_name="run",
                    index=models.Index(fields=["state", "enqueued_at"], name="run_state"),
                ),
                migrations.AddIndex(
                    model_name="run",
                    index=models.Index(fields=["job", "-scheduled_for"], name="run_history"),
                ),
                migrations.AddConstraint(
                    model_name="run",
                    constraint=models.UniqueConstraint(
                        fields=("job", "scheduled_for"), name="run_one_per_moment"
                    ),
                ),
            ],
        ),
        migrations.RunPython(move_content_types, return_content_types),
    ]
