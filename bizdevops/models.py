from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A task for the workers, written in the same transaction as the change that causes it
    and deleted once the broker has taken it (bizdevops/outbox.py). A row that is here is
    work not yet handed over: its age is the delay the broker's absence costs."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    # Celery options of the message (time limits); its queue comes from CELERY_TASK_ROUTES.
    options = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # Not sent before this moment: a retry's backoff, or the backoff after failed sends.
    available_at = models.DateTimeField(default=timezone.now)
    send_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["available_at", "id"], name="outbox_due")]
        verbose_name = "outbox message"

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"


class Preference(models.Model):
    """What a user chose for themselves. One row per user, created when they first save; the
    middleware (bizdevops/middleware.py) reads it once per session."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    # An IANA name from zoneinfo.available_timezones(); empty: settings.TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.time_zone or 'default'}"
