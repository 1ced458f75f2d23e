"""Admin forms whose save is a service call, so the admin obeys the same rules as every
other door. The service runs during validation: a refusal becomes a form error and nothing
is written (the admin wraps the request in one transaction)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest

from bizdevops import text
from bizdevops.errors import DomainError


class ServiceForm(forms.ModelForm):
    user: Any = None
    result: models.Model | None = None

    def perform(self, data: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def _post_clean(self) -> None:
        # Replaces the model validation: the service validates, and the model's own checks
        # would run against the row the service has just written.
        if self.errors:
            return
        try:
            self.result = self.perform(self.cleaned_data)
        except DomainError as error:
            field = error.field if error.field in self.fields else None
            self.add_error(field, error.message)
        except PermissionDenied as error:
            self.add_error(None, str(error) or "You may not do this.")


class TextCheckedForm(forms.ModelForm):
    """For the few admin pages that save a configuration row without a service (gates and
    their criteria): its texts obey `bizdevops.text` like every text a service takes."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, value in list(cleaned.items()):
            try:
                field = self._meta.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if not isinstance(value, str) or not isinstance(
                field, models.CharField | models.TextField
            ):
                continue
            multiline = isinstance(field, models.TextField)
            label = str(field.verbose_name).capitalize()
            message = text.refusal(value, label, multiline=multiline)
            if message is not None:
                self.add_error(name, message)
        return cleaned


class ServiceAdmin(admin.ModelAdmin):
    """Saves through `form.perform`; never deletes."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        # A subclass per request, so the acting user never leaks between requests.
        return type(form.__name__, (form,), {"user": request.user})

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        return form.result

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Inlines on service admins are read-only; the admin's change message still reads
        # what each formset "saved".
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        adminform = context.get("adminform")
        if adminform is not None and getattr(adminform.form, "result", None) is not None:
            # The service wrote while validating, yet the page is shown again (an inline
            # formset was invalid): undo the write with the admin's request transaction.
            transaction.set_rollback(True)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
