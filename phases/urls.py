from __future__ import annotations

from django.urls import path

from phases import views

urlpatterns = [
    path(
        "initiatives/<str:key>/criteria/<slug:code>/", views.criterion_tick, name="criterion-tick"
    ),
    path(
        "initiatives/<str:key>/criteria/<slug:code>/ask/", views.criterion_ask, name="criterion-ask"
    ),
    path("initiatives/<str:key>/decisions/", views.decide, name="decide"),
]
