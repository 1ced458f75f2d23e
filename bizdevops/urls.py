from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from bizdevops import preferences
from bizdevops.api import healthz
from bizdevops.search import search_page

admin.site.site_header = "BizDevOps administration"
admin.site.site_title = "BizDevOps admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("bizdevops.api_urls")),
    path("healthz", healthz, name="healthz"),
    path("search/", search_page, name="search"),
    path("preferences/", preferences.preferences, name="preferences"),
    path("", include("initiatives.urls")),
    path("", include("phases.urls")),
    path("", include("kpis.urls")),
    path("", include("jobs.urls")),
    path("", include("notifications.urls")),
]

handler403 = "bizdevops.web.permission_denied"
handler404 = "bizdevops.web.page_not_found"
handler500 = "bizdevops.web.server_error"
