from __future__ import annotations

from django.conf import settings
from django.db import models

from initiatives.models import Initiative


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class KPI(models.Model):
    """A success KPI of an initiative, with its target and warning / critical thresholds."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="kpis")
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=30, blank=True, help_text="e.g. %, EUR, hours")
    description = models.TextField(blank=True)
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.HIGHER)
    target = models.FloatField(null=True, blank=True)
    warning_threshold = models.FloatField(null=True, blank=True)
    critical_threshold = models.FloatField(null=True, blank=True)
    # The status last alerted on: an alert goes out only when the latest value's status differs.
    last_health = models.CharField(max_length=10, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["initiative", "name"]
        verbose_name = "KPI"
        constraints = [
            models.UniqueConstraint(fields=["initiative", "name"], name="kpi_name_unique"),
            models.CheckConstraint(
                condition=models.Q(direction__in=Direction.values), name="kpi_direction_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.initiative.key}: {self.name}"


class Origin(models.TextChoices):
    RUN = "run", "Job run"
    API = "api", "Pushed through the API"


class Measurement(models.Model):
    """One value of a KPI as of a moment. Writing the same (KPI, as_of) again updates it."""

    kpi = models.ForeignKey(KPI, on_delete=models.CASCADE, related_name="measurements")
    as_of = models.DateTimeField()
    value = models.FloatField()
    origin = models.CharField(max_length=8, choices=Origin.choices)
    run = models.ForeignKey(
        "Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="measurements"
    )
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kpi_id", "as_of"]  # kpi_id: no join into the KPI's own ordering
        constraints = [
            models.UniqueConstraint(fields=["kpi", "as_of"], name="measurement_one_per_instant")
        ]

    def __str__(self) -> str:
        return f"{self.kpi.name} @ {self.as_of:%Y-%m-%d %H:%M}: {self.value}"


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
    timeout_seconds = models.PositiveIntegerField(default=30)
    max_retries = models.PositiveSmallIntegerField(default=2)
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
                condition=models.Q(timeout_seconds__gte=1, timeout_seconds__lte=3600),
                name="job_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_retries__lte=10), name="job_retries_range"
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
