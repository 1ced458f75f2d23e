"""Every write to KPIs and measurements, and the alert when a KPI changes status."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError, clean_text, reject_unknown
from initiatives.models import Initiative, Phase
from initiatives.services import initiative_lock, require_open
from kpis import permissions
from kpis.health import Health, kpi_health
from kpis.models import KPI, MAX_DECIMALS, Direction, Measurement, Origin
from kpis.partitions import retention_cutoff
from kpis.rollups import rollups_refresh, rollups_refresh_at, rollups_refresh_statement
from notifications import services as notifications
from notifications.models import Alert, Event

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ALERT_KIND = "kpi_status"

KPI_FIELDS = (
    "name",
    "unit",
    "description",
    "direction",
    "target",
    "warning_threshold",
    "critical_threshold",
    "decimals",
)


def _validate(values: dict[str, Any]) -> None:
    name = clean_text(values.get("name"), "name", "The name")
    if not name:
        raise DomainError("A KPI needs a name.", field="name", code="required")
    values["name"] = name
    values["unit"] = clean_text(values.get("unit"), "unit", "The unit")
    values["description"] = clean_text(
        values.get("description"), "description", "The description", multiline=True
    )
    try:
        direction = Direction(values.get("direction") or Direction.HIGHER)
    except ValueError:
        raise DomainError("Direction is 'higher' or 'lower'.", field="direction") from None
    values["direction"] = direction
    decimals = values.get("decimals")
    if decimals is not None and not (
        isinstance(decimals, int)
        and not isinstance(decimals, bool)
        and 0 <= decimals <= MAX_DECIMALS
    ):
        raise DomainError(
            f"Decimals is a whole number from 0 to {MAX_DECIMALS}, or empty (from the unit).",
            field="decimals",
        )
    target, warning, critical = (
        values.get("target"),
        values.get("warning_threshold"),
        values.get("critical_threshold"),
    )
    # Thresholds sit between the target and worse values: for "higher is better"
    # critical <= warning <= target, for "lower is better" the other way round.
    ordered = [v for v in (critical, warning, target) if v is not None]
    if direction == Direction.LOWER:
        ordered.reverse()
        wording = "critical ≥ warning ≥ target"
    else:
        wording = "critical ≤ warning ≤ target"
    if ordered != sorted(ordered):
        raise DomainError(
            f"With '{direction.label.lower()}' the thresholds must satisfy {wording}.",
            field="warning_threshold",
        )


@transaction.atomic
def kpi_define(*, initiative: Initiative, user: User, **values: Any) -> KPI:
    """Define a KPI (accountable PM, admins, or the team's engineers)."""
    reject_unknown(values, KPI_FIELDS)
    initiative = initiative_lock(initiative)
    permissions.can_define_kpi.check(user, initiative)
    require_open(initiative)
    _validate(values)
    if initiative.kpis.filter(name__iexact=values["name"]).exists():
        raise DomainError(f"{initiative.key} has a KPI named {values['name']!r}.", field="name")
    return KPI.objects.create(initiative=initiative, created_by=user, **values)


@transaction.atomic
def kpi_update(*, kpi: KPI, user: User, **changes: Any) -> KPI:
    reject_unknown(changes, KPI_FIELDS)
    # Lock order everywhere: initiative, then job or KPI, then run (no deadlocks).
    initiative = initiative_lock(kpi.initiative)
    kpi = KPI.objects.select_for_update(of=("self",)).get(pk=kpi.pk)
    kpi.initiative = initiative
    permissions.can_change_kpi.check(user, kpi.initiative)
    require_open(kpi.initiative)
    values = {field: getattr(kpi, field) for field in KPI_FIELDS} | changes
    _validate(values)
    if kpi.initiative.kpis.filter(name__iexact=values["name"]).exclude(pk=kpi.pk).exists():
        raise DomainError(f"The initiative has a KPI named {values['name']!r}.", field="name")
    for field in KPI_FIELDS:
        setattr(kpi, field, values[field])
    kpi.save()
    return kpi


@transaction.atomic
def kpi_remove(*, kpi: KPI, user: User) -> None:
    """Remove a KPI while its initiative is in Biz (those who may define KPIs). Outside Biz a
    KPI is part of what the gates agreed on; a KPI with values or a job (an initiative
    recycled to Biz) keeps them as history, so it stays too."""
    initiative = initiative_lock(kpi.initiative)
    kpi = KPI.objects.select_for_update(of=("self",)).get(pk=kpi.pk)
    permissions.can_change_kpi.check(user, initiative)
    require_open(initiative)
    if initiative.phase != Phase.BIZ:
        raise ConflictError(
            f"KPIs are removed only in Biz; {initiative.key} is in "
            f"{initiative.get_phase_display()}. Edit the KPI instead, or recycle to Biz.",
            code="wrong_phase",
        )
    # The job is named by its relation (jobs is the app above this one).
    if kpi.measurements.exists() or KPI.objects.filter(pk=kpi.pk, job__isnull=False).exists():
        raise ConflictError(
            f"“{kpi.name}” has values or a job, which stay as its history: it cannot be removed.",
            code="kpi_has_history",
        )
    kpi.delete()


# Measurements ------------------------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def measurement_check(
    *, as_of: dt.datetime, value: float, item: int | None = None, now: dt.datetime | None = None
) -> None:
    """The bounds every measurement meets, whoever writes it (API, job run, demo data):
    `as_of` has a time zone, is not before 1970 and at most MEASUREMENT_MAX_FUTURE_SECONDS
    ahead (a value dated 9999 would stay the latest for ever, so no later value could change
    the KPI's status), nor older than the retention cutoff (`kpis.partitions`: the rollups
    of those days would be recomputed from the few raw values left); the value is finite with
    |value| <= MEASUREMENT_MAX_ABS_VALUE. `item` is the index of the value in a push, named in
    the error's field."""
    where, label = ("", "") if item is None else (f"[{item}].", f"Measurement [{item}]: ")
    if timezone.is_naive(as_of):
        raise DomainError(f"{label}as_of needs a time zone.", field=f"{where}as_of")
    if as_of < EPOCH:
        raise DomainError(f"{label}as_of must be 1970-01-01 or later.", field=f"{where}as_of")
    ahead = settings.MEASUREMENT_MAX_FUTURE_SECONDS
    if as_of > (now or timezone.now()) + dt.timedelta(seconds=ahead):
        raise DomainError(
            f"{label}as_of may be at most {ahead} seconds in the future.", field=f"{where}as_of"
        )
    cutoff = retention_cutoff(now=now)
    if cutoff is not None and as_of < cutoff:
        raise DomainError(
            f"{label}as_of must be {cutoff:%Y-%m-%d} or later: raw values are kept "
            f"{settings.MEASUREMENT_RAW_RETENTION_DAYS} days.",
            field=f"{where}as_of",
        )
    bound = settings.MEASUREMENT_MAX_ABS_VALUE
    if not abs(value) <= bound:  # `not <=`: NaN is refused too
        raise DomainError(
            f"{label}The value must be a number from {-bound:g} to {bound:g}.",
            field=f"{where}value",
        )


@transaction.atomic
def measurement_record(
    *, kpi: KPI, as_of: dt.datetime, value: float, origin: str, run_id: int | None = None
) -> Measurement:
    """Write the value of a KPI as of a moment; the same (KPI, as_of) again updates it
    (an upsert on the unique constraint, so a redelivered run never duplicates). `run_id`
    is the job run that computed it (runs belong to the `jobs` app above this one)."""
    locked = kpi_lock(kpi_id=kpi.pk)
    measurement_write(kpi=locked, as_of=as_of, value=value, origin=origin, run_id=run_id)
    return Measurement.objects.get(kpi=kpi, as_of=as_of)


def kpi_lock(*, kpi_id: int) -> KPI:
    """The KPI's row as stored now, locked until the end of the caller's transaction. Every
    writer of a KPI's values takes it before writing them (kpis.rollups' contract), so two
    writers of one KPI serialize and each sees the other's values and alerted status."""
    return KPI.objects.select_for_update(of=("self",)).get(pk=kpi_id)


# One round trip on PostgreSQL, three statements in one string: the upsert, the refresh of
# the rollups holding the value (kpis.rollups), and the KPI's latest value after the write.
# Each statement has a snapshot of its own, taken after the caller locked the KPI and seeing
# the writes before it, so the refresh and the latest value miss no committed value; only the
# last one's row comes back.
_UPSERT_SQL = """
INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, run_id, recorded_at)
VALUES (%(kpi)s, %(as_of)s, %(value)s, %(origin)s, %(run)s, %(now)s)
ON CONFLICT (kpi_id, as_of) DO UPDATE SET
    value = EXCLUDED.value,
    origin = EXCLUDED.origin,
    run_id = EXCLUDED.run_id,
    recorded_at = EXCLUDED.recorded_at
"""
_LATEST_SQL = """
SELECT as_of, value, %(previous)s FROM kpis_measurement WHERE kpi_id = %(kpi)s
ORDER BY as_of DESC LIMIT 1
"""
# In place of _LATEST_SQL when the value being written changes the KPI's status if it is the
# latest: the compare-and-set of `kpi_status_update` in the same statement, applied only if
# no later value exists (else the status is that value's, judged after in Python); the
# status as stored after it. (With the measurements partitioned by month, 13 partitions,
# planning a read of the latest value took 0.8 ms and running it 0.15 ms on a loaded machine:
# it is read once.)
_JUDGED_SQL = """
WITH latest AS (
    SELECT as_of, value FROM kpis_measurement WHERE kpi_id = %(kpi)s
    ORDER BY as_of DESC LIMIT 1
), judged AS (
    UPDATE kpis_kpi SET last_health = %(health)s
    WHERE id = %(kpi)s AND last_health = %(previous)s
      AND (SELECT as_of FROM latest) <= %(as_of)s
    RETURNING last_health
)
SELECT as_of, value, COALESCE((SELECT last_health FROM judged), %(previous)s) FROM latest
"""


def measurement_write(
    *, kpi: KPI, as_of: dt.datetime, value: float, origin: str, run_id: int | None = None
) -> float | None:
    """Upsert one value of a KPI the caller has locked (`kpi_lock`, in its transaction) and
    refresh the rollups holding it; returns the KPI's latest value after the write (for its
    status). One round trip on PostgreSQL (the upsert, the rollups, the latest value), four
    statements on SQLite."""
    measurement_check(as_of=as_of, value=value)
    if connection.vendor == "postgresql":
        return _write_postgres(kpi, as_of, value, origin, run_id)[1]
    previous = kpi.measurements.order_by("-as_of").values_list("as_of", "value").first()
    Measurement.objects.bulk_create(
        [Measurement(kpi=kpi, as_of=as_of, value=value, origin=origin, run_id=run_id)],
        update_conflicts=True,
        unique_fields=["kpi", "as_of"],
        update_fields=["value", "origin", "run", "recorded_at"],
    )
    rollups_refresh(kpi_id=kpi.pk, start=as_of, end=as_of)
    # The value written is the latest unless an older as_of was written again.
    if previous is None or as_of >= previous[0]:
        return value
    return float(previous[1])


def measurement_write_judged(
    *, kpi: KPI, as_of: dt.datetime, value: float, origin: str, run_id: int | None = None
) -> Alert | None:
    """`measurement_write`, then `kpi_status_update` with the latest value, for a KPI the
    caller has locked: `kpi` is the row as locked (its thresholds and last alerted status).
    On PostgreSQL one round trip when the value written is the latest, whether the status
    changes or not (its compare-and-set goes with the write); an alert, when the change
    calls for one, is recorded after it."""
    if connection.vendor != "postgresql":
        latest = measurement_write(kpi=kpi, as_of=as_of, value=value, origin=origin, run_id=run_id)
        return kpi_status_update(kpi=kpi, latest=latest)
    measurement_check(as_of=as_of, value=value)
    previous = kpi.last_health
    health = kpi_health(kpi, value)
    judged = (health, previous) if health != previous else None
    latest_as_of, latest, stored = _write_postgres(kpi, as_of, value, origin, run_id, judged)
    if latest_as_of is not None and latest_as_of > as_of:
        # A later value is the latest (a late run for an older moment): its status stands,
        # judged again as kpi_status_update does (the compare-and-set above did not apply).
        return kpi_status_update(kpi=kpi, latest=latest)
    if judged is None or stored != health:
        return None  # the status is unchanged (or another writer set it: never, under the lock)
    kpi.last_health = health
    return _status_alert(kpi=kpi, previous=previous, health=health, latest=value)


def _write_postgres(
    kpi: KPI,
    as_of: dt.datetime,
    value: float,
    origin: str,
    run_id: int | None,
    judged: tuple[str, str] | None = None,
) -> tuple[dt.datetime | None, float | None, str]:
    """(as_of and value of the KPI's latest measurement after the write, its stored status)."""
    refresh, params = rollups_refresh_statement(kpi_id=kpi.pk, start=as_of, end=as_of)
    mine = {
        "kpi": kpi.pk,
        "as_of": as_of,
        "value": value,
        "origin": origin,
        "run": run_id,
        "now": timezone.now(),
    }
    if judged is not None:
        mine |= {"health": judged[0], "previous": judged[1]}
    else:
        mine["previous"] = kpi.last_health
    if set(mine) & set(params) != {"kpi"}:
        raise AssertionError("The statements' parameter names clash.")
    statements = [_UPSERT_SQL, refresh, _JUDGED_SQL if judged else _LATEST_SQL]
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements), params | mine)
        latest_as_of, latest, stored = cursor.fetchone()
    return latest_as_of, (None if latest is None else float(latest)), stored


MAX_PUSH = 10_000


# The upsert of a push on PostgreSQL: the batch travels as two arrays (one statement however
# long it is); the moments already there are counted in the same statement (its snapshot is
# from before the insert; the KPI's row lock keeps other writers out), which tells created
# from updated. (`RETURNING xmax = 0` would, but not on a partitioned table.)
_PUSH_SQL = """
WITH batch AS (
    SELECT * FROM unnest(%(as_of)s::timestamptz[], %(value)s::float8[]) AS t(as_of, value)
), existing AS (
    SELECT count(*) AS n FROM batch JOIN kpis_measurement m
    ON m.kpi_id = %(kpi)s AND m.as_of = batch.as_of
    WHERE m.as_of >= %(first)s AND m.as_of <= %(last)s
), written AS (
    INSERT INTO kpis_measurement (kpi_id, as_of, value, origin, run_id, recorded_at)
    SELECT %(kpi)s, as_of, value, %(origin)s, NULL, %(now)s FROM batch
    ON CONFLICT (kpi_id, as_of) DO UPDATE SET
        value = EXCLUDED.value,
        origin = EXCLUDED.origin,
        run_id = NULL,
        recorded_at = EXCLUDED.recorded_at
    RETURNING 1
)
SELECT (SELECT n FROM existing), (SELECT count(*) FROM written)
"""


@transaction.atomic
def measurements_push(
    *, kpi: KPI, user: User, items: list[tuple[dt.datetime, float]]
) -> tuple[int, int]:
    """Push values of a KPI (an integration: admins or the team's engineers). The same as_of
    again updates the value. Returns (created, updated). The KPI's rollups of the hours and
    days the values fall in are recomputed in the same transaction, under the KPI's row lock
    taken before the values are written (see `rollups_refresh`)."""
    if not items:
        raise DomainError("Give at least one measurement.", field="measurements")
    if len(items) > MAX_PUSH:
        raise DomainError(f"At most {MAX_PUSH} measurements per request.", field="measurements")
    initiative = initiative_lock(kpi.initiative)
    permissions.can_push_measurements.check(user, initiative)
    require_open(initiative)
    latest: dict[dt.datetime, float] = {}
    now = timezone.now()
    # measurement_check's bounds, compared inline (a third of a 10,000-value push went to
    # the calls); an item out of them goes through measurement_check for its error.
    latest_allowed = now + dt.timedelta(seconds=settings.MEASUREMENT_MAX_FUTURE_SECONDS)
    bound = settings.MEASUREMENT_MAX_ABS_VALUE
    for index, (as_of, value) in enumerate(items):
        naive = as_of.utcoffset() is None
        if naive or not (EPOCH <= as_of <= latest_allowed and -bound <= value <= bound):
            measurement_check(as_of=as_of, value=value, item=index, now=now)
        latest[as_of] = value  # the last value given for a moment wins
    # Lock order: initiative, then KPI. Writers of one KPI's values serialize here, so each
    # one's rollup refresh sees the values the other committed.
    locked = kpi_lock(kpi_id=kpi.pk)
    locked.initiative = initiative
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _PUSH_SQL,
                {
                    "kpi": kpi.pk,
                    "origin": Origin.API.value,
                    "now": now,
                    # Array literals, parsed by PostgreSQL in one go (a list would be
                    # sent as ARRAY[...] of 10,000 expressions: a third of the time).
                    "first": min(latest),
                    "last": max(latest),
                    "as_of": "{" + ",".join(as_of.isoformat() for as_of in latest) + "}",
                    "value": "{" + ",".join(repr(value) for value in latest.values()) + "}",
                },
            )
            updated, _ = cursor.fetchone()
    else:
        existing = set(
            Measurement.objects.filter(kpi=kpi, as_of__in=list(latest)).values_list(
                "as_of", flat=True
            )
        )
        Measurement.objects.bulk_create(
            [
                Measurement(kpi=kpi, as_of=as_of, value=value, origin=Origin.API)
                for as_of, value in latest.items()
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["kpi", "as_of"],
            update_fields=["value", "origin", "run", "recorded_at"],
        )
        updated = sum(1 for as_of in latest if as_of in existing)
    rollups_refresh_at(kpi_id=kpi.pk, moments=latest)
    newest = locked.measurements.order_by("-as_of").values_list("value", flat=True).first()
    kpi_status_update(kpi=locked, latest=newest)
    return len(latest) - updated, updated


def kpi_status_check(*, kpi: KPI) -> Alert | None:
    """After values of a KPI were written: when the status of its latest value differs from
    the last status alerted on, record one alert (`kpi_status_update`)."""
    # Read the KPI afresh: its thresholds and last alerted status as stored now.
    kpi = KPI.objects.select_related("initiative__business_unit").get(pk=kpi.pk)
    latest = kpi.measurements.order_by("-as_of").values_list("value", flat=True).first()
    return kpi_status_update(kpi=kpi, latest=latest)


def kpi_status_update(*, kpi: KPI, latest: float | None) -> Alert | None:
    """The status of the KPI's latest value `latest`, against the thresholds and the last
    alerted status of `kpi` as read now (or locked): when it differs from the last status
    alerted on, record one alert (mailed to the accountable PM and the unit's stakeholders,
    webhook `kpi.status_changed`). A compare-and-set on KPI.last_health makes two writers at
    once alert once, and an unchanged status not at all (no query then)."""
    health = kpi_health(kpi, latest)
    previous = kpi.last_health
    if latest is None or health == previous:  # no value: no status (Health.UNKNOWN)
        return None
    if KPI.objects.filter(pk=kpi.pk, last_health=previous).update(last_health=health) != 1:
        return None
    kpi.last_health = health
    return _status_alert(kpi=kpi, previous=previous, health=health, latest=latest)


def _status_alert(*, kpi: KPI, previous: str, health: Health, latest: float) -> Alert | None:
    """The alert of a status change the caller has just stored (compare-and-set)."""
    if not previous and health == Health.HEALTHY:
        return None  # a first value that is healthy is no change worth an alert
    initiative = kpi.initiative
    was = Health(previous).label.lower() if previous else "no status"
    return notifications.alert_record(
        kind=ALERT_KIND,
        subject=initiative.key,
        url=reverse("initiative-kpis", kwargs={"key": initiative.key}),
        object_type="kpi",
        object_id=kpi.pk,
        from_status=previous or Health.UNKNOWN,
        to_status=health,
        value=latest,
        message=(
            f"{initiative.key} {kpi.name}: {was} → {health.label.lower()} "
            f"(value {latest:g}{' ' + kpi.unit if kpi.unit else ''})."
        ),
        recipients={
            initiative.accountable_id,
            *initiative.business_unit.stakeholders.values_list("pk", flat=True),
        },
        event=Event.KPI_STATUS_CHANGED,
        payload={
            "initiative": initiative.key,
            "kpi": {"id": kpi.pk, "name": kpi.name, "unit": kpi.unit},
            "from": previous or Health.UNKNOWN,
            "to": str(health),
            "value": latest,
        },
    )
