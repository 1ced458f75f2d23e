from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from bizdevops.admin_forms import ReadOnlyAdmin, ServiceAdmin, ServiceForm
from notifications import services
from notifications.models import Alert, Event, WebhookDelivery, WebhookSubscription


class SubscriptionForm(ServiceForm):
    events = forms.MultipleChoiceField(choices=Event.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "allow_private_addresses", "description"]

    def perform(self, data: dict[str, Any]) -> WebhookSubscription:
        subscription, secret = services.webhook_subscribe(
            user=self.user,
            url=data["url"],
            events=list(data["events"]),
            allow_private_addresses=data.get("allow_private_addresses", False),
            description=data.get("description", ""),
        )
        self.secret = secret
        return subscription


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceAdmin):
    form = SubscriptionForm
    list_display = ["url", "events", "active", "created_at"]
    list_filter = ["active"]
    actions = ["deactivate"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        messages.warning(
            request,
            f"Signing secret (shown once; the receiver checks the {services.SIGNATURE_HEADER} "
            f"header, HMAC-SHA256 of the body): {form.secret}",
        )
        return super().save_form(request, form, change)

    @admin.action(description="Deactivate the selected subscriptions")
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        for subscription in queryset:
            services.webhook_deactivate(subscription=subscription, user=request.user)  # type: ignore[arg-type]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event", "subscription", "state", "status_code", "attempts", "created_at"]
    list_select_related = ["subscription"]
    list_filter = ["state", "event"]
    readonly_fields = ["payload"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["message", "kind", "subject", "to_status", "created_at"]
    list_filter = ["kind", "to_status"]
    search_fields = ["message", "subject"]
