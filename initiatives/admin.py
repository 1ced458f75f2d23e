from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from bizdevops.admin_forms import ReadOnlyInline, ServiceAdmin, ServiceForm
from bizdevops.errors import DomainError
from bizdevops.roles import Role
from initiatives import selectors, services
from initiatives.forms import people_with
from initiatives.models import (
    BusinessUnit,
    Handover,
    Initiative,
    Iteration,
    Membership,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ScopedToInitiatives:
    """For the admins of models that belong to an initiative: the list, the change pages and
    the initiative choices hold only the initiatives the user may see (through
    `initiative_path`, e.g. "kpi__initiative__"). A superuser sees everything."""

    initiative_path = "initiative__"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return selectors.limit_to_visible(
            super().get_queryset(request),  # type: ignore[misc]
            request.user,
            self.initiative_path,
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "initiative":
            kwargs["queryset"] = selectors.limit_to_visible(Initiative.objects.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class BusinessUnitForm(ServiceForm):
    class Meta:
        model = BusinessUnit
        fields = ["name", "description", "stakeholders"]

    def perform(self, data: dict[str, Any]) -> BusinessUnit:
        return services.business_unit_save(
            user=self.user,
            unit=self.instance if self.instance.pk else None,
            name=data["name"],
            description=data.get("description", ""),
            stakeholders=data.get("stakeholders"),
        )


@admin.register(BusinessUnit)
class BusinessUnitAdmin(ServiceAdmin):
    form = BusinessUnitForm
    list_display = ["name", "stakeholder_count"]
    search_fields = ["name", "description"]
    filter_horizontal = ["stakeholders"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BusinessUnit]:
        return selectors.business_units_visible_to(request.user).prefetch_related("stakeholders")

    @admin.display(description="stakeholders")
    def stakeholder_count(self, obj: BusinessUnit) -> int:
        return len(obj.stakeholders.all())

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "stakeholders":
            kwargs["queryset"] = people_with(Role.BUSINESS_STAKEHOLDER)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class InitiativeAddForm(ServiceForm):
    class Meta:
        model = Initiative
        fields = [
            "title",
            "business_unit",
            "accountable",
            "dev_timebox_weeks",
            *services.STORY_FIELDS,
        ]

    def perform(self, data: dict[str, Any]) -> Initiative:
        story = {field: data.get(field, "") for field in services.STORY_FIELDS}
        return services.initiative_create(
            user=self.user,
            title=data["title"],
            business_unit=data["business_unit"],
            accountable=data["accountable"],
            dev_timebox_weeks=data["dev_timebox_weeks"],
            **story,
        )


class InitiativeChangeForm(ServiceForm):
    class Meta:
        model = Initiative
        fields = list(services.EDITABLE_FIELDS)

    def perform(self, data: dict[str, Any]) -> Initiative:
        changes = {field: data[field] for field in self.changed_data if field in data}
        if not changes:
            return self.instance
        return services.initiative_update(initiative=self.instance, user=self.user, **changes)


class MembershipInline(ReadOnlyInline):
    model = Membership
    fk_name = "initiative"
    fields = ("user", "role", "joined_at", "left_at", "leave_reason")
    readonly_fields = fields


class IterationInline(ReadOnlyInline):
    model = Iteration
    fields = ("number", "happened_on", "tried", "business_feedback")
    readonly_fields = fields


class HandoverInline(ReadOnlyInline):
    model = Handover
    fields = ("at", "from_user", "to_user", "reason", "handed_over_by")
    readonly_fields = fields


@admin.register(Initiative)
class InitiativeAdmin(ScopedToInitiatives, ServiceAdmin):
    initiative_path = ""

    list_display = [
        "key",
        "title",
        "business_unit",
        "accountable",
        "phase",
        "status",
        "timebox",
    ]
    list_display_links = ["key", "title"]
    list_filter = [
        "phase",
        "status",
        # Only the units of the initiatives listed (a stakeholder sees no other unit named).
        ("business_unit", admin.RelatedOnlyFieldListFilter),
        ("accountable", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["business_unit", "accountable"]
    search_fields = ["title", "business_problem", "use_case", "accountable__username"]
    readonly_fields = ["key", "accountable", "phase", "status", "dev_started_at", "created_by"]
    inlines = [MembershipInline, IterationInline, HandoverInline]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = InitiativeChangeForm if obj is not None else InitiativeAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        story = {"fields": list(services.STORY_FIELDS)}
        if obj is None:
            main = ["title", "business_unit", "accountable", "dev_timebox_weeks"]
        else:
            main = [
                "key",
                "title",
                "business_unit",
                "accountable",
                "phase",
                "status",
                "dev_timebox_weeks",
                "dev_started_at",
                "created_by",
            ]
        return [(None, {"fields": main}), ("Story", story)]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "accountable":
            kwargs["queryset"] = people_with(Role.PROGRAM_MANAGER)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Initiative], search_term: str
    ) -> tuple[QuerySet[Initiative], bool]:
        pk = selectors.parse_key(search_term.strip())
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="key", ordering="id")
    def key(self, obj: Initiative) -> str:
        return obj.key

    @admin.display(description="Dev timebox")
    def timebox(self, obj: Initiative) -> str:
        left = obj.dev_days_left
        if left is None:
            return "—"
        return f"{left} days left" if left >= 0 else f"overdue by {-left} days"


class HandoverForm(ServiceForm):
    class Meta:
        model = Handover
        fields = ["initiative", "to_user", "reason"]

    def perform(self, data: dict[str, Any]) -> Handover:
        return services.initiative_hand_over(
            initiative=data["initiative"], to=data["to_user"], reason=data["reason"], user=self.user
        )


@admin.register(Handover)
class HandoverAdmin(ScopedToInitiatives, ServiceAdmin):
    form = HandoverForm
    list_display = ["initiative", "from_user", "to_user", "handed_over_by", "at"]
    list_select_related = ["initiative", "from_user", "to_user", "handed_over_by"]
    list_filter = ["at"]
    search_fields = ["reason", "from_user__username", "to_user__username", "initiative__title"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "to_user":
            kwargs["queryset"] = people_with(Role.PROGRAM_MANAGER)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MembershipForm(ServiceForm):
    class Meta:
        model = Membership
        fields = ["initiative", "user", "role"]

    def perform(self, data: dict[str, Any]) -> Membership:
        return services.member_add(
            initiative=data["initiative"], member=data["user"], role=data["role"], user=self.user
        )


@admin.register(Membership)
class MembershipAdmin(ScopedToInitiatives, ServiceAdmin):
    form = MembershipForm
    list_display = ["initiative", "user", "role", "joined_at", "left_at"]
    list_select_related = ["initiative", "user"]
    list_filter = ["role", ("left_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "initiative__title"]
    actions = ["remove_from_team"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Remove the selected people from their team")
    def remove_from_team(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        removed = 0
        for membership in queryset.filter(left_at__isnull=True):
            try:
                services.member_remove(membership=membership, user=cast("User", request.user))
                removed += 1
            except (DomainError, PermissionDenied) as error:
                self.message_user(request, f"{membership}: {error}", messages.ERROR)
        self.message_user(request, f"{removed} removed from their team.", messages.SUCCESS)


class IterationAddForm(ServiceForm):
    class Meta:
        model = Iteration
        fields = ["initiative", "tried", "happened_on", "business_feedback"]

    def perform(self, data: dict[str, Any]) -> Iteration:
        return services.iteration_add(
            initiative=data["initiative"],
            user=self.user,
            tried=data["tried"],
            happened_on=data["happened_on"],
            business_feedback=data.get("business_feedback", ""),
        )


class IterationFeedbackForm(ServiceForm):
    class Meta:
        model = Iteration
        fields = ["business_feedback"]

    def perform(self, data: dict[str, Any]) -> Iteration:
        return services.iteration_record_feedback(
            iteration=self.instance, business_feedback=data["business_feedback"], user=self.user
        )


@admin.register(Iteration)
class IterationAdmin(ScopedToInitiatives, ServiceAdmin):
    list_display = ["initiative", "number", "happened_on", "has_feedback"]
    list_select_related = ["initiative"]
    search_fields = ["tried", "business_feedback", "initiative__title"]
    list_filter = ["happened_on"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = IterationFeedbackForm if obj is not None else IterationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["initiative", "number", "tried", "happened_on", "recorded_by"] if obj else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["initiative", "tried", "happened_on", "business_feedback"]
        return ["initiative", "number", "happened_on", "tried", "recorded_by", "business_feedback"]

    @admin.display(boolean=True, description="feedback")
    def has_feedback(self, obj: Iteration) -> bool:
        return bool(obj.business_feedback)
