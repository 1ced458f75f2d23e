from __future__ import annotations

from django.urls import path

from notifications import views

urlpatterns = [path("alerts/", views.my_alerts, name="alerts")]
