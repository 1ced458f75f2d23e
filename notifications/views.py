from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifications.models import Alert

RECENT = 50


@login_required
def my_alerts(request: HttpRequest) -> HttpResponse:
    alerts = (
        Alert.objects.filter(recipients=request.user.pk)
        .select_related("initiative", "kpi", "run")
        .order_by("-created_at", "-id")[:RECENT]
    )
    return render(request, "notifications/alerts.html", {"alerts": alerts})
