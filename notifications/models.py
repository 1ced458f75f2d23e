from __future__ import annotations

from django.conf import settings
from django.db import models


class Event(models.TextChoices):
    INITIATIVE_DECIDED = "initiative.decided", "A gate decision was recorded"
    INITIATIVE_HANDED_OVER = "initiative.handed_over", "Accountability was handed over"
    KPI_STATUS_CHANGED = "kpi.status_changed", "A KPI changed status"
    RUN_FAILED = "run.failed", "A job run failed after its last retry"


class AlertKind(models.TextChoices):
    KPI_STATUS = "kpi_status", "KPI status changed"
    RUN_FAILED = "run_failed", "Job run failed"


class Alert(models.Model):
    """Something people must know, recorded once and sent once to its recipients."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    initiative = models.ForeignKey(
        "initiatives.Initiative", on_delete=models.CASCADE, related_name="alerts"
    )
    kpi = models.ForeignKey(
        "kpis.KPI", on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    run = models.ForeignKey(
        "kpis.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    value = models.FloatField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="alerts", blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.message


class WebhookSubscription(models.Model):
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event names, e.g. kpi.status_changed.")
    secret_encrypted = models.TextField(editable=False)
    allow_private_addresses = models.BooleanField(
        default=False, help_text="Allow private, loopback and link-local addresses."
    )
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=40, choices=Event.choices)
    payload = models.JSONField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription.url} ({self.state})"
