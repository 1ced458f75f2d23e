from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from bizdevops.admin_forms import ServiceAdmin, ServiceForm, TextCheckedForm
from bizdevops.errors import DomainError
from initiatives.admin import ScopedToInitiatives
from phases import services
from phases.models import Criterion, CriterionKind, Gate, GateDecision, Tick

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class CriterionInline(admin.TabularInline):
    model = Criterion
    form = TextCheckedForm
    extra = 0
    can_delete = False
    fields = ["position", "code", "title", "kind", "check_name", "tick_policy", "active"]


@admin.register(Gate)
class GateAdmin(admin.ModelAdmin):
    """Gates are fixed (Biz → Dev, Dev → Ops); their criteria are editable rows. A criterion
    is deactivated, never deleted: decisions keep pointing at it."""

    form = TextCheckedForm
    list_display = ["name", "from_phase", "to_phase"]
    readonly_fields = ["code", "from_phase", "to_phase"]
    inlines = [CriterionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    form = TextCheckedForm
    list_display = ["title", "gate", "kind", "check_name", "tick_policy", "position", "active"]
    list_filter = ["gate", "kind", "active"]
    list_editable = ["position", "active"]
    search_fields = ["code", "title", "description"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TickForm(ServiceForm):
    class Meta:
        model = Tick
        fields = ["initiative", "criterion", "note", "evidence_url"]

    def perform(self, data: dict[str, Any]) -> Tick:
        return services.criterion_tick(
            initiative=data["initiative"],
            criterion=data["criterion"],
            user=self.user,
            note=data.get("note", ""),
            evidence_url=data.get("evidence_url", ""),
        )


@admin.register(Tick)
class TickAdmin(ScopedToInitiatives, ServiceAdmin):
    form = TickForm
    list_display = ["initiative", "criterion", "ticked_by", "ticked_at", "revoked_at"]
    list_select_related = ["initiative", "criterion", "ticked_by"]
    list_filter = ["criterion__gate", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["initiative__title", "criterion__title", "ticked_by__username", "note"]
    actions = ["untick"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "criterion":
            kwargs["queryset"] = Criterion.objects.filter(kind=CriterionKind.MANUAL, active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(description="Untick (revoke) the selected ticks")
    def untick(self, request: HttpRequest, queryset: QuerySet[Tick]) -> None:
        for tick in queryset.filter(revoked_at__isnull=True).select_related("initiative"):
            try:
                services.criterion_untick(
                    initiative=tick.initiative,
                    criterion=tick.criterion,
                    user=cast("User", request.user),
                )
            except (DomainError, PermissionDenied) as error:
                self.message_user(request, f"{tick}: {error}", messages.ERROR)


class DecisionForm(ServiceForm):
    rationale = forms.CharField(widget=forms.Textarea)

    class Meta:
        model = GateDecision
        fields = ["initiative", "decision", "rationale"]

    def perform(self, data: dict[str, Any]) -> GateDecision:
        return services.gate_decide(
            initiative=data["initiative"],
            decision=data["decision"],
            rationale=data["rationale"],
            user=self.user,
        )


@admin.register(GateDecision)
class GateDecisionAdmin(ScopedToInitiatives, ServiceAdmin):
    """Decisions are recorded (through the service) and then only read: the history is
    append-only."""

    form = DecisionForm
    list_display = [
        "initiative",
        "decision",
        "from_phase",
        "to_phase",
        "to_status",
        "decided_by",
        "decided_at",
    ]
    list_select_related = ["initiative", "decided_by"]
    list_filter = ["decision", "to_phase", "decided_at"]
    search_fields = ["initiative__title", "rationale", "decided_by__username"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
