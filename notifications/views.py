from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from notifications import selectors


@login_required
@require_safe
def my_alerts(request: HttpRequest) -> HttpResponse:
    alerts = selectors.alerts_for(request.user)[: selectors.RECENT]
    return render(request, "notifications/alerts.html", {"alerts": alerts})
