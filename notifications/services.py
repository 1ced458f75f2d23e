"""Alerts and signed webhooks: every write here. The callers (KPIs, jobs, gates) decide that
something happened and hand over plain data; nothing here knows what a KPI or a run is."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import smtplib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from bizdevops import crypto, http, outbox
from bizdevops.errors import ConflictError, DomainError, clean_text
from notifications.models import (
    Alert,
    AlertMailing,
    DeliveryState,
    Event,
    WebhookDelivery,
    WebhookSubscription,
)
from notifications.permissions import can_manage_webhooks

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SIGNATURE_HEADER = "X-BizDevOps-Signature"
DELIVER_WEBHOOK = "notifications.tasks.deliver_webhook"
SEND_ALERT_EMAIL = "notifications.tasks.send_alert_email"
REAP_DELIVERIES = "notifications.tasks.reap_deliveries"


def alert_record(
    *,
    kind: str,
    message: str,
    recipients: Iterable[int],
    event: Event,
    payload: dict[str, Any],
    subject: str = "",
    url: str = "",
    detail_label: str = "",
    detail_url: str = "",
    object_type: str = "",
    object_id: str | int = "",
    from_status: str = "",
    to_status: str = "",
    value: float | None = None,
) -> Alert:
    """Record one alert for the given user ids, publish its webhook event and mail it once
    the caller's transaction commits (so an alert exists only if its cause was committed)."""
    alert = Alert.objects.create(
        kind=kind,
        message=message,
        subject=subject,
        url=url,
        detail_label=detail_label,
        detail_url=detail_url,
        object_type=object_type,
        object_id=str(object_id),
        from_status=from_status,
        to_status=to_status,
        value=value,
    )
    alert.recipients.set(set(recipients))
    event_publish(event=event, payload=payload)
    outbox.enqueue(SEND_ALERT_EMAIL, alert.pk)
    return alert


class RequestTooSoon(ConflictError):
    """The same request went to the same person a moment ago (`request_record`'s limit)."""

    def __init__(self, message: str, *, last: Alert) -> None:
        super().__init__(message, code="asked_recently")
        self.last = last


def request_record(
    *,
    kind: str,
    sender: User,
    recipient: User,
    message: str,
    subject: str = "",
    url: str = "",
    object_type: str = "",
    object_id: str | int = "",
    once_per: dt.timedelta | None = None,
    about: str = "",  # the refusal's start: "Ada Lovelace was asked to register the job"
) -> Alert:
    """Record a request one person sends another (the accountable PM asking an engineer to
    register a job): an entry in the recipient's alerts, mailed once the caller's transaction
    commits, as any alert. With `once_per`, the same request (kind, recipient, object) again
    within that time is refused (`RequestTooSoon`, naming when it may be sent again); the
    caller serializes requests about one object (it holds the object's lock). #16's
    notification centre receives these as they are: a kind, a sender, a recipient, an object.
    """
    if once_per is not None:
        now = timezone.now()
        last = (
            Alert.objects.filter(
                kind=kind,
                object_type=object_type,
                object_id=str(object_id),
                recipients=recipient.pk,
                created_at__gt=now - once_per,
            )
            .order_by("-created_at", "-id")
            .first()
        )
        if last is not None:
            again = timezone.localtime(last.created_at + once_per)
            minutes = max(1, int((now - last.created_at).total_seconds() // 60))
            raise RequestTooSoon(
                f"{about or 'This was asked'} {minutes} minute{'s' if minutes != 1 else ''} "
                f"ago already; you can ask again from {again:%H:%M}.",
                last=last,
            )
    alert = Alert.objects.create(
        kind=kind,
        message=message,
        subject=subject,
        url=url,
        object_type=object_type,
        object_id=str(object_id),
        sent_by=sender,
    )
    alert.recipients.set([recipient.pk])
    outbox.enqueue(SEND_ALERT_EMAIL, alert.pk)
    return alert


MAIL_ATTEMPTS = 5


def alert_email(alert: Alert) -> int:
    """Mail an alert to its recipients who have an address, once: a second call (a message
    sent twice) finds it sent and mails nothing. A mail server that refuses or cannot be
    reached is tried again (outbox, 1, 2, 4, 8 minutes), MAIL_ATTEMPTS times in all. Returns
    the mails sent."""
    with transaction.atomic():
        mailing, _ = AlertMailing.objects.select_for_update().get_or_create(alert=alert)
        if mailing.sent_at is not None or mailing.attempts >= MAIL_ATTEMPTS:
            return 0
        mailing.attempts += 1
        try:
            sent = _mail(alert)
        except (OSError, smtplib.SMTPException) as error:
            mailing.last_error = f"{type(error).__name__}: {error}"[:2000]
            if mailing.attempts < MAIL_ATTEMPTS:
                outbox.enqueue(SEND_ALERT_EMAIL, alert.pk, delay=60 * 2 ** (mailing.attempts - 1))
            mailing.save(update_fields=["attempts", "last_error"])
            return 0
        mailing.sent_at, mailing.last_error = timezone.now(), ""
        mailing.save(update_fields=["attempts", "sent_at", "last_error"])
    return sent


def _mail(alert: Alert) -> int:
    addresses = sorted(
        {email for email in alert.recipients.values_list("email", flat=True) if email}
    )
    if not addresses:
        return 0
    link = f"{settings.SITE_URL.rstrip('/')}{alert.url}" if alert.url else settings.SITE_URL
    return send_mail(
        # A header is one line: errors quoted in a message may span several.
        subject="[BizDevOps] " + " ".join(alert.message.split())[:150],
        message=f"{alert.message}\n\n{link}\n",
        from_email=None,
        recipient_list=addresses,
    )


# Webhooks ------------------------------------------------------------------------------------


def _check_url(url: str, allow_private: bool) -> None:
    try:
        http.check_url(url, allow_private)
    except http.OutboundError as error:
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
    can_manage_webhooks.check(user)
    description = clean_text(description, "description", "The description")
    unknown = sorted(set(events) - set(Event.values))
    if not events or unknown:
        raise DomainError("Events are some of: " + ", ".join(Event.values) + ".", field="events")
    _check_url(url, allow_private_addresses)
    secret = secrets.token_urlsafe(32)
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
    can_manage_webhooks.check(user)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)
    subscription.active = False
    return subscription


def event_publish(*, event: Event, payload: dict[str, Any]) -> list[int]:
    """Record one delivery per active subscription to the event (in the caller's
    transaction, so an event exists only if what caused it was committed) and send each
    once the transaction commits."""
    body = {"event": str(event), "sent_at": timezone.now().isoformat(), "data": payload}
    created = []
    for subscription in WebhookSubscription.objects.filter(active=True):
        if str(event) not in subscription.events:
            continue
        delivery = WebhookDelivery.objects.create(
            subscription=subscription, event=event, payload=body
        )
        created.append(delivery.pk)
        _send(delivery.pk)
    return created


def _send(delivery_id: int, delay: float = 0) -> None:
    # The limits travel in the message: the sender's settings decide, whether or not this
    # process has imported the task.
    outbox.enqueue(
        DELIVER_WEBHOOK,
        delivery_id,
        delay=delay,
        soft_time_limit=settings.WEBHOOK_SOFT_TIME_LIMIT,
        time_limit=settings.WEBHOOK_TIME_LIMIT,
    )


def deliveries_reap(*, waiting: int | None, now: dt.datetime | None = None) -> list[int]:
    """Send again the pending deliveries whose message was lost (Redis restarted without its
    data): no message in the outbox, no attempt in flight, and nothing waiting in the
    broker's `webhooks` queue (`waiting`; None: the broker cannot tell, so nothing is
    judged lost). Each resend can cost at most one attempt, so WEBHOOK_MAX_ATTEMPTS still
    bounds them; a message that was not lost after all is postponed by the claim."""
    if waiting != 0:
        return []
    now = now or timezone.now()
    in_outbox = outbox.pending_args(DELIVER_WEBHOOK)
    resent = []
    with transaction.atomic():
        pending = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(
            state=DeliveryState.PENDING,
            created_at__lt=now - dt.timedelta(seconds=settings.WEBHOOK_TIME_LIMIT),
        )
        for delivery in pending.filter(
            models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lt=now)
        ).exclude(pk__in=in_outbox):
            _send(delivery.pk)
            resent.append(delivery.pk)
    return resent


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Count an attempt of a pending delivery; None when there is nothing to send now.

    A message may come twice (the outbox sends at least once): an attempt claims the delivery
    until its hard time limit has passed, and a second message meanwhile is postponed to that
    moment instead of POSTing the same body at the same time."""
    now = timezone.now()
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
        if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            # Counted attempts that never recorded an answer (the worker was killed at the
            # hard time limit, and the message came back): stop here.
            delivery.state = DeliveryState.FAILED
            delivery.save(update_fields=["state"])
            return None
        if delivery.claimed_until is not None and delivery.claimed_until > now:
            _send(delivery.pk, delay=(delivery.claimed_until - now).total_seconds())
            return None
        delivery.attempts += 1
        delivery.claimed_until = now + dt.timedelta(seconds=settings.WEBHOOK_TIME_LIMIT)
        delivery.save(update_fields=["attempts", "claimed_until"])
    return delivery


def delivery_attempt(*, delivery_id: int) -> int | None:
    """POST a delivery once. Returns the seconds until the next attempt (written to the
    outbox with the result), or None when it is done (delivered, or failed for good after
    WEBHOOK_MAX_ATTEMPTS)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    subscription = delivery.subscription
    body = json.dumps(delivery.payload, cls=DjangoJSONEncoder, sort_keys=True).encode()
    answer = http.post(
        subscription.url,
        body=body,
        allow_private=subscription.allow_private_addresses,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        headers={
            "Content-Type": "application/json",
            "X-BizDevOps-Event": delivery.event,
            "X-BizDevOps-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: sign(crypto.decrypt(subscription.secret_encrypted), body),
        },
    )
    return _record(delivery_id, answer)


def delivery_time_out(*, delivery_id: int) -> int | None:
    """The worker stopped an attempt at its soft time limit: record it as a failed attempt
    and return the wait before the next one, as for any failed attempt (None when done)."""
    return _record(delivery_id, http.Answer(None, "The delivery exceeded its time limit."))


def _record(delivery_id: int, answer: http.Answer) -> int | None:
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.state != DeliveryState.PENDING:
            return None
        delivery.status_code, delivery.last_error = answer.status_code, answer.error
        delivery.claimed_until = None
        if not answer.error:
            delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, timezone.now()
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.state = DeliveryState.FAILED
        delivery.save(
            update_fields=["status_code", "last_error", "state", "delivered_at", "claimed_until"]
        )
        if delivery.state == DeliveryState.PENDING:
            delay = int(min(2**delivery.attempts, 600))
            _send(delivery.pk, delay=delay)
            return delay
    return None
