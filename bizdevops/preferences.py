"""A user's own preferences (their time zone): the service, the form and the page, the API
(`GET/PATCH /api/v1/me/`). bizdevops/backends.py reads them with the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bizdevops.api import StrictSerializer, validated
from bizdevops.errors import DomainError
from bizdevops.middleware import available_time_zones, remember_time_zone, time_zone_valid
from bizdevops.models import Preference
from bizdevops.web import require_get_or_post, run_service

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@transaction.atomic
def preference_save(*, user: User, time_zone: str) -> Preference:
    """Save the user's time zone: an IANA name (zoneinfo.available_timezones()) or empty for
    the site's default (settings.TIME_ZONE)."""
    name = (time_zone or "").strip()
    if name and not time_zone_valid(name):
        raise DomainError(
            f"{name!r} is not a time zone name (e.g. Europe/Berlin).", field="time_zone"
        )
    preference, _ = Preference.objects.update_or_create(user=user, defaults={"time_zone": name})
    return preference


def preference_of(user: User) -> Preference:
    return Preference.objects.filter(user=user).first() or Preference(user=user)


def _choices() -> list[tuple[str, str]]:
    default = f"The site's default ({settings.TIME_ZONE})"
    return [("", default), *((name, name) for name in sorted(available_time_zones()))]


class PreferenceForm(forms.Form):
    time_zone = forms.ChoiceField(
        required=False,
        help_text="Times on every page are shown in this zone.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["time_zone"].choices = _choices()  # type: ignore[attr-defined]


@login_required
@require_get_or_post
def preferences(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    preference = preference_of(user)
    if request.method == "POST":
        form = PreferenceForm(request.POST)
        if form.is_valid():
            saved = run_service(
                form,
                lambda: preference_save(user=user, time_zone=form.cleaned_data["time_zone"]),
            )
            if saved is not None:
                remember_time_zone(request, saved.time_zone)
                messages.success(
                    request, f"Times are now shown in {saved.time_zone or settings.TIME_ZONE}."
                )
                return redirect("preferences")
        status = 400
    else:
        form = PreferenceForm(initial={"time_zone": preference.time_zone})
        status = 200
    context = {
        "form": form,
        "current": timezone.get_current_timezone_name(),
        "now": timezone.localtime(),
        "nav": "preferences",
    }
    return render(request, "preferences.html", context, status=status)


class MeSerializer(StrictSerializer):
    username = serializers.CharField(read_only=True)
    time_zone = serializers.CharField(
        max_length=64,
        allow_blank=True,
        help_text="An IANA time zone name (e.g. Europe/Berlin); empty: the site's default.",
    )
    time_zone_in_effect = serializers.CharField(
        read_only=True, help_text="The chosen time zone, else the site's default."
    )


def _me(user: User) -> dict[str, str]:
    chosen = preference_of(user).time_zone
    return {
        "username": user.get_username(),
        "time_zone": chosen,
        "time_zone_in_effect": chosen or settings.TIME_ZONE,
    }


class MeView(APIView):
    """The caller's own preferences (their time zone)."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(_me(request.user))

    @extend_schema(request=MeSerializer, responses=MeSerializer)
    def patch(self, request: Request) -> Response:
        data = validated(MeSerializer, request, partial=True)
        if "time_zone" in data:
            preference_save(user=request.user, time_zone=data["time_zone"])
        return Response(_me(request.user))
