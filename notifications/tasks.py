"""Celery tasks: doors into the services that own only retries and time limits."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from bizdevops import outbox
from bizdevops.db import retry_on_lost_connection
from notifications import services
from notifications.models import Alert

log = logging.getLogger(__name__)

WEBHOOKS_QUEUE = "webhooks"


# The POST has its own deadline (WEBHOOK_TIMEOUT_SECONDS); the time limits stop an attempt
# stuck anywhere else. At the soft limit the attempt is recorded as failed and retried.
@shared_task(
    bind=True,
    name=services.DELIVER_WEBHOOK,
    ignore_result=True,
    soft_time_limit=settings.WEBHOOK_SOFT_TIME_LIMIT,
    time_limit=settings.WEBHOOK_TIME_LIMIT,
)
def deliver_webhook(self, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        retry_in = services.delivery_attempt(delivery_id=delivery_id)
    except SoftTimeLimitExceeded:
        retry_in = services.delivery_time_out(delivery_id=delivery_id)
    if retry_in is not None:
        # The next attempt is in the outbox (backoff doubling each time); the delivery row
        # counts the attempts and stops them.
        log.info("Webhook delivery %s: attempt failed; next in %ds", delivery_id, retry_in)


@shared_task(name=services.SEND_ALERT_EMAIL, ignore_result=True)
def send_alert_email(alert_id: int) -> int:
    return services.alert_email(Alert.objects.get(pk=alert_id))


@shared_task(name=services.REAP_DELIVERIES, ignore_result=True)
def reap_deliveries() -> int:
    waiting = outbox.broker_waiting(WEBHOOKS_QUEUE)
    resent = retry_on_lost_connection(
        lambda: services.deliveries_reap(waiting=waiting), what="the deliveries' reaper"
    )
    if resent:
        log.warning("Resent %d webhook deliveries whose message was lost: %s", len(resent), resent)
    return len(resent)
