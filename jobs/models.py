"""Data sources, KPI recalculation jobs and their runs. The tables were created by the `kpis`
app and moved here (see migrations/0001_initial.py); their limits are defined once below and
used by the model, the forms, the serializers and the services."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from kpis.models import KPI

# Job limits: one definition for the model, forms, serializers and services.
TIMEOUT_MIN_SECONDS = 1
TIMEOUT_MAX_SECONDS = 3600
TIMEOUT_DEFAULT_SECONDS = 30
RETRIES_MAX = 10
RETRIES_DEFAULT = 2
INTERVAL_MIN_SECONDS = 10
INTERVAL_MAX_SECONDS = 366 * 86400
# Backoff between attempts of a run that failed transiently: 2, 4, 8, ... seconds, capped.
RETRY_BACKOFF_MAX_SECONDS = 300


def retry_backoff(attempt: int) -> int:
    """Seconds to wait before attempt `attempt + 1` of a run."""
    return int(min(2**attempt, RETRY_BACKOFF_MAX_SECONDS))


class SourceKind(models.TextChoices):
    SQL = "sql", "SQL query"
    HTTP = "http", "HTTP GET + JSON path"
    PYTHON = "python", "Python calculation"


class DataSourceKind(models.TextChoices):
    DATABASE = "database", "Database (SQL)"
    HTTP = "http", "HTTP base URL"


class DataSource(models.Model):
    """A named connection configured by admins. The URL (with its credentials) is stored
    encrypted, or read from an environment variable; it is never shown back."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=DataSourceKind.choices)
    url_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of an environment variable that holds the URL (preferred in production).",
    )
    url_encrypted = models.TextField(blank=True, editable=False)
    display_url = models.CharField(
        max_length=300, blank=True, editable=False, help_text="The URL without credentials."
    )
    allow_private_addresses = models.BooleanField(
        default=False,
        help_text="HTTP only: allow private, loopback and link-local addresses (internal APIs).",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(url_env="") | ~models.Q(url_encrypted=""),
                name="datasource_has_url",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ScheduleKind(models.TextChoices):
    CRON = "cron", "Cron expression"
    INTERVAL = "interval", "Fixed interval"


class Job(models.Model):
    """The recalculation job of one KPI: a schedule and a source."""

    kpi = models.OneToOneField(KPI, on_delete=models.CASCADE, related_name="job")
    schedule_kind = models.CharField(max_length=10, choices=ScheduleKind.choices)
    cron = models.CharField(max_length=100, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    data_source = models.ForeignKey(
        DataSource, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    sql = models.TextField(blank=True, help_text="One SELECT returning exactly one number.")
    http_path = models.CharField(max_length=500, blank=True)
    json_path = models.CharField(max_length=200, blank=True)
    calculation = models.CharField(max_length=100, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=TIMEOUT_DEFAULT_SECONDS)
    max_retries = models.PositiveSmallIntegerField(default=RETRIES_DEFAULT)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kpi"]
        indexes = [
            # The dispatcher's query: enabled jobs whose next run is due.
            models.Index(
                fields=["next_run_at"],
                condition=models.Q(enabled=True),
                name="job_due",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    timeout_seconds__gte=TIMEOUT_MIN_SECONDS,
                    timeout_seconds__lte=TIMEOUT_MAX_SECONDS,
                ),
                name="job_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_retries__lte=RETRIES_MAX), name="job_retries_range"
            ),
            models.CheckConstraint(
                condition=models.Q(interval_seconds__isnull=True)
                | models.Q(
                    interval_seconds__gte=INTERVAL_MIN_SECONDS,
                    interval_seconds__lte=INTERVAL_MAX_SECONDS,
                ),
                name="job_interval_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Job for {self.kpi}"

    @property
    def schedule_display(self) -> str:
        if self.schedule_kind == ScheduleKind.CRON:
            return f"cron {self.cron}"
        seconds = self.interval_seconds or 0
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds % size == 0 and seconds >= size:
                n = seconds // size
                return f"every {n} {unit}{'s' if n != 1 else ''}"
        return f"every {seconds} seconds"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


FINISHED_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED})


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Run now"
    TRIAL = "trial", "Trial run"


class Run(models.Model):
    """One execution of a job for one scheduled-for moment (unique per job and moment)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    scheduled_for = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="Executions started.")
    deliveries = models.PositiveSmallIntegerField(
        default=0, help_text="Times the run was sent to the workers (the reaper resends)."
    )
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "scheduled_for"], name="run_one_per_moment"),
        ]
        indexes = [
            models.Index(fields=["state", "enqueued_at"], name="run_state"),
            models.Index(fields=["job", "-scheduled_for"], name="run_history"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.job} ({self.state})"

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES
