"""Every write to KPI definitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from bizdevops.errors import ConflictError, DomainError
from initiatives import permissions
from initiatives.models import Initiative, TeamRole
from initiatives.services import initiative_lock
from kpis.models import KPI, Direction

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KPI_FIELDS = (
    "name",
    "unit",
    "description",
    "direction",
    "target",
    "warning_threshold",
    "critical_threshold",
)


def _may_define(user: User, initiative: Initiative) -> bool:
    engineers = {TeamRole.DATA_ENGINEER, TeamRole.DEVOPS_ENGINEER}
    return permissions.can_manage(user, initiative) or bool(
        permissions.active_roles_on(user, initiative) & engineers
    )


def _validate(values: dict[str, Any]) -> None:
    name = (values.get("name") or "").strip()
    if not name:
        raise DomainError("A KPI needs a name.", field="name", code="required")
    values["name"] = name
    for text in ("unit", "description"):
        values[text] = (values.get(text) or "").strip()
    try:
        direction = Direction(values.get("direction") or Direction.HIGHER)
    except ValueError:
        raise DomainError("Direction is 'higher' or 'lower'.", field="direction") from None
    values["direction"] = direction
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
    unknown = set(values) - set(KPI_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    initiative = initiative_lock(initiative)
    if not _may_define(user, initiative):
        raise PermissionDenied("You may not define KPIs for this initiative.")
    if initiative.is_final:
        raise ConflictError(f"{initiative.key} is closed.", code="final_status")
    _validate(values)
    if initiative.kpis.filter(name__iexact=values["name"]).exists():
        raise DomainError(f"{initiative.key} has a KPI named {values['name']!r}.", field="name")
    return KPI.objects.create(initiative=initiative, created_by=user, **values)


@transaction.atomic
def kpi_update(*, kpi: KPI, user: User, **changes: Any) -> KPI:
    unknown = set(changes) - set(KPI_FIELDS)
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    kpi = KPI.objects.select_for_update().get(pk=kpi.pk)
    kpi.initiative = initiative_lock(kpi.initiative)
    if not _may_define(user, kpi.initiative):
        raise PermissionDenied("You may not change KPIs of this initiative.")
    if kpi.initiative.is_final:
        raise ConflictError(f"{kpi.initiative.key} is closed.", code="final_status")
    values = {field: getattr(kpi, field) for field in KPI_FIELDS} | changes
    _validate(values)
    if kpi.initiative.kpis.filter(name__iexact=values["name"]).exclude(pk=kpi.pk).exists():
        raise DomainError(f"The initiative has a KPI named {values['name']!r}.", field="name")
    for field in KPI_FIELDS:
        setattr(kpi, field, values[field])
    kpi.save()
    return kpi
