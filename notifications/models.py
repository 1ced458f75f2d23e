from __future__ import annotations

from django.conf import settings
from django.db import models

from bizdevops.history import AppendOnlyModel


class Event(models.TextChoices):
    INITIATIVE_DECIDED = "initiative.decided", "A gate decision was recorded"
    INITIATIVE_HANDED_OVER = "initiative.handed_over", "Accountability was handed over"
    KPI_STATUS_CHANGED = "kpi.status_changed", "A KPI changed status"
    RUN_FAILED = "run.failed", "A job run failed after its last retry"


class Alert(AppendOnlyModel):
    """Something people must know, recorded once and sent once to its recipients (history:
    append-only; who received it is the `recipients` relation, which is not). It holds
    plain data given by the part of the product that raised it: what it is about (a type and
    id, a subject such as an initiative key, the page to open), the status it reports and
    the message. This app knows nothing of KPIs or jobs."""

    kind = models.CharField(max_length=40, help_text="The raiser's name for it, e.g. kpi_status.")
    subject = models.CharField(max_length=200, blank=True, help_text="e.g. an initiative key.")
    url = models.CharField(max_length=500, blank=True, help_text="The page the alert is about.")
    detail_label = models.CharField(max_length=40, blank=True)
    detail_url = models.CharField(max_length=500, blank=True, help_text="A second link.")
    object_type = models.CharField(max_length=40, blank=True, help_text="e.g. kpi, run.")
    object_id = models.CharField(max_length=40, blank=True)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    value = models.FloatField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="alerts", blank=True)
    # A request one person sends another (`request_record`, e.g. the accountable PM asking an
    # engineer to register a job); empty for alerts the system raises.
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="alert_object")]

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
    # An attempt in flight holds the delivery until its hard time limit has passed.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription.url} ({self.state})"


class AlertMailing(models.Model):
    """Whether an alert's e-mail went out: the mail task may get its message twice (the
    outbox sends at least once), and a second message must not send a second mail."""

    alert = models.OneToOneField(Alert, on_delete=models.CASCADE, related_name="mailing")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"mail of alert {self.alert_id}: {'sent' if self.sent_at else 'not sent'}"
