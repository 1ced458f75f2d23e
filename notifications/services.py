"""Alerts (KPI status changes, failed runs) and signed webhooks. Every write here."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as pysecrets
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from bizdevops.errors import DomainError
from initiatives.models import Membership, TeamRole
from initiatives.roles import is_admin
from kpis import secrets as crypto
from kpis.health import Health, kpi_health
from kpis.models import KPI
from kpis.sources import SourceError, check_address
from notifications.models import (
    Alert,
    AlertKind,
    DeliveryState,
    Event,
    WebhookDelivery,
    WebhookSubscription,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from kpis.models import Run

SIGNATURE_HEADER = "X-BizDevOps-Signature"


def _notify(alert: Alert, event: Event, payload: dict[str, Any]) -> None:
    from notifications.tasks import send_alert_email

    event_publish(event=event, payload=payload)
    transaction.on_commit(lambda: send_alert_email.delay(alert.pk))


def kpi_status_check(*, kpi: KPI) -> Alert | None:
    """After values of a KPI were written: when the status of its latest value differs from
    the last status alerted on, record one alert and send it once (mail to the accountable PM
    and the unit's stakeholders, webhook `kpi.status_changed`). A compare-and-set on
    KPI.last_health makes two writers at once send one alert, and an unchanged status none."""
    # Read the KPI afresh: its thresholds and last alerted status as stored now.
    kpi = KPI.objects.select_related("initiative__business_unit").get(pk=kpi.pk)
    latest = kpi.measurements.order_by("-as_of").values_list("value", flat=True).first()
    health = kpi_health(kpi, latest)
    previous = kpi.last_health
    if health == Health.UNKNOWN or health == previous:
        return None
    if KPI.objects.filter(pk=kpi.pk, last_health=previous).update(last_health=health) != 1:
        return None
    if not previous and health == Health.HEALTHY:
        return None  # a first value that is healthy is no change worth an alert
    initiative = kpi.initiative
    was = Health(previous).label.lower() if previous else "no status"
    alert = Alert.objects.create(
        kind=AlertKind.KPI_STATUS,
        initiative=initiative,
        kpi=kpi,
        from_status=previous or Health.UNKNOWN,
        to_status=health,
        value=latest,
        message=(
            f"{initiative.key} {kpi.name}: {was} → {health.label.lower()} "
            f"(value {latest:g}{' ' + kpi.unit if kpi.unit else ''})."
        ),
    )
    people = {
        initiative.accountable_id,
        *initiative.business_unit.stakeholders.values_list("pk", flat=True),
    }
    alert.recipients.set(people)
    _notify(
        alert,
        Event.KPI_STATUS_CHANGED,
        {
            "initiative": initiative.key,
            "kpi": {"id": kpi.pk, "name": kpi.name, "unit": kpi.unit},
            "from": previous or Health.UNKNOWN,
            "to": str(health),
            "value": latest,
        },
    )
    return alert


def run_failed(*, run: Run) -> Alert:
    """A run failed after its last retry: alert the job's engineers (the team's data and
    devops engineers, and whoever registered the job) and send `run.failed`."""
    job = run.job
    initiative = job.kpi.initiative
    alert = Alert.objects.create(
        kind=AlertKind.RUN_FAILED,
        initiative=initiative,
        kpi=job.kpi,
        run=run,
        message=f"{initiative.key} {job.kpi.name}: run {run.pk} failed: {run.error[:300]}",
    )
    engineers = set(
        Membership.objects.filter(
            initiative=initiative,
            left_at__isnull=True,
            role__in=[TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER],
        ).values_list("user_id", flat=True)
    )
    alert.recipients.set(engineers | {job.created_by_id})
    _notify(
        alert,
        Event.RUN_FAILED,
        {
            "initiative": initiative.key,
            "kpi": {"id": job.kpi.pk, "name": job.kpi.name},
            "job": job.pk,
            "run": run.pk,
            "attempt": run.attempt,
            "error": run.error,
        },
    )
    return alert


def alert_email(alert: Alert) -> int:
    """Mail an alert to its recipients who have an address. Returns the mails sent."""
    addresses = sorted(
        {email for email in alert.recipients.values_list("email", flat=True) if email}
    )
    if not addresses:
        return 0
    link = f"{settings.SITE_URL.rstrip('/')}/initiatives/{alert.initiative.key}/dashboard/"
    return send_mail(
        # A header is one line: errors quoted in a message may span several.
        subject="[BizDevOps] " + " ".join(alert.message.split())[:150],
        message=f"{alert.message}\n\n{link}\n",
        from_email=None,
        recipient_list=addresses,
    )


# Webhooks ------------------------------------------------------------------------------------


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise DomainError("A webhook URL is http(s)://host/...", field="url")
    try:
        check_address(parts.hostname, allow_private)
    except SourceError as error:
        raise DomainError(str(error), field="url") from None


@transaction.atomic
def webhook_subscribe(
    *,
    user: User,
    url: str,
    events: list[str],
    allow_private_addresses: bool = False,
    description: str = "",
) -> tuple[WebhookSubscription, str]:
    """Subscribe a URL to events (admins). Returns the subscription and its signing secret,
    which is shown this once and stored encrypted."""
    if not is_admin(user):
        raise PermissionDenied("Only admins manage webhooks.")
    unknown = sorted(set(events) - set(Event.values))
    if not events or unknown:
        raise DomainError("Events are some of: " + ", ".join(Event.values) + ".", field="events")
    _check_url(url, allow_private_addresses)
    secret = pysecrets.token_urlsafe(32)
    subscription = WebhookSubscription.objects.create(
        url=url,
        events=sorted(set(events)),
        secret_encrypted=crypto.encrypt(secret),
        allow_private_addresses=allow_private_addresses,
        description=description,
        created_by=user,
    )
    return subscription, secret


@transaction.atomic
def webhook_deactivate(*, subscription: WebhookSubscription, user: User) -> WebhookSubscription:
    """Stop sending to a subscription (admins); deliveries still pending fail unsent."""
    if not is_admin(user):
        raise PermissionDenied("Only admins manage webhooks.")
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)
    subscription.active = False
    return subscription


def event_publish(*, event: Event, payload: dict[str, Any]) -> list[int]:
    """Record one delivery per active subscription to the event (in the caller's
    transaction, so an event exists only if what caused it was committed) and send each
    once the transaction commits."""
    from notifications.tasks import deliver_webhook

    body = {"event": str(event), "sent_at": timezone.now().isoformat(), "data": payload}
    created = []
    for subscription in WebhookSubscription.objects.filter(active=True):
        if str(event) not in subscription.events:
            continue
        delivery = WebhookDelivery.objects.create(
            subscription=subscription, event=event, payload=body
        )
        created.append(delivery.pk)
        transaction.on_commit(partial(deliver_webhook.delay, delivery.pk))
    return created


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_attempt(*, delivery_id: int) -> int | None:
    """POST a delivery once. Returns the seconds to wait before the next attempt, or None
    when it is done (delivered, or failed for good after WEBHOOK_MAX_ATTEMPTS)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("subscription")
            .get(pk=delivery_id)
        )
        if delivery.state != DeliveryState.PENDING:
            return None
        if not delivery.subscription.active:
            delivery.state, delivery.last_error = DeliveryState.FAILED, "Subscription deactivated."
            delivery.save(update_fields=["state", "last_error"])
            return None
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    subscription = delivery.subscription
    body = json.dumps(delivery.payload, cls=DjangoJSONEncoder, sort_keys=True).encode()
    status_code, error = None, ""
    try:
        _check_url(subscription.url, subscription.allow_private_addresses)
        response = requests.post(
            subscription.url,
            data=body,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "BizDevOps webhooks",
                "X-BizDevOps-Event": delivery.event,
                "X-BizDevOps-Delivery": str(delivery.pk),
                SIGNATURE_HEADER: sign(crypto.decrypt(subscription.secret_encrypted), body),
            },
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"Answered {status_code}."
    except DomainError as refusal:
        error = refusal.message
    except requests.RequestException as failure:
        error = f"{type(failure).__name__}: the receiver did not answer."
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        delivery.status_code, delivery.last_error = status_code, error
        if not error:
            delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, timezone.now()
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.state = DeliveryState.FAILED
        delivery.save(update_fields=["status_code", "last_error", "state", "delivered_at"])
        if delivery.state == DeliveryState.PENDING:
            return int(min(2**delivery.attempts, 600))
    return None
