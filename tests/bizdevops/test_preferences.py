"""Every user picks their time zone: the preferences page, its validation, the middleware
that activates it (at no extra query: the preference comes with the user), the default."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from bizdevops.errors import DomainError
from bizdevops.models import Preference
from bizdevops.preferences import preference_save
from tests.helpers import html, queries

pytestmark = pytest.mark.django_db


def test_the_page_shows_the_default_then_saves_a_zone(client: Any, pm: Any, settings: Any) -> None:
    client.force_login(pm)
    content = html(client.get("/preferences/"))
    assert f"The site&#x27;s default ({settings.TIME_ZONE})" in content
    assert '<option value="Europe/Berlin">' in content
    assert 'href="/preferences/"' in content  # the username in the navigation leads here

    response = client.post("/preferences/", {"time_zone": "Europe/Berlin"})

    assert response.status_code == 302 and response["Location"] == "/preferences/"
    assert Preference.objects.get(user=pm).time_zone == "Europe/Berlin"
    content = html(client.get("/preferences/"))
    assert "Times are now shown in Europe/Berlin." in content
    assert '<option value="Europe/Berlin" selected>' in content
    assert "(Europe/Berlin)" in content and " CET (" in content


def test_an_unknown_zone_is_a_form_error(client: Any, pm: Any) -> None:
    client.force_login(pm)
    content = html(client.post("/preferences/", {"time_zone": "Mars/Olympus"}), 400)
    assert "Select a valid choice" in content
    assert not Preference.objects.filter(user=pm).exists()


def test_the_service_validates_against_the_zone_database(pm: Any) -> None:
    with pytest.raises(DomainError) as refused:
        preference_save(user=pm, time_zone="Europe/Atlantis")
    assert refused.value.field == "time_zone"
    assert preference_save(user=pm, time_zone="  ").time_zone == ""  # back to the default
    assert preference_save(user=pm, time_zone="Asia/Tokyo").time_zone == "Asia/Tokyo"
    assert Preference.objects.filter(user=pm).count() == 1


def test_pages_show_times_in_the_users_zone(
    client: Any, stakeholder: Any, ops_kpi: Any, settings: Any
) -> None:
    from kpis import services
    from kpis.models import Origin

    as_of = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    if as_of > timezone.now():
        as_of -= dt.timedelta(days=1)
    services.measurement_record(kpi=ops_kpi, as_of=as_of, value=90.0, origin=Origin.API)
    url = f"/initiatives/{ops_kpi.initiative.key}/dashboard/"
    client.force_login(stakeholder)
    assert f"{as_of:%Y-%m-%d} 12:00 UTC" in html(client.get(url))

    client.post("/preferences/", {"time_zone": "Asia/Tokyo"})
    assert f"{as_of:%Y-%m-%d} 21:00 JST" in html(client.get(url))
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE  # not left active


def test_the_zone_costs_no_query(client: Any, pm: Any, other_pm: Any) -> None:
    """A user with a preference and one without: the same queries per page (the preference
    is selected with the user), and each gets their own zone."""
    preference_save(user=pm, time_zone="Asia/Tokyo")
    client.force_login(other_pm)
    client.get("/board/")
    without = queries(client, "/board/")
    other = Client()
    other.force_login(pm)
    other.get("/board/")
    assert queries(other, "/board/") == without
    assert "(Asia/Tokyo)" in html(other.get("/preferences/"))
    assert "(Asia/Tokyo)" not in html(client.get("/preferences/"))


def test_anonymous_requests_use_the_default(client: Any) -> None:
    response = client.get("/preferences/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_api_reads_and_sets_the_callers_zone(pm: Any, settings: Any) -> None:
    from rest_framework.test import APIClient

    from tests.api.conftest import authenticate

    api = authenticate(APIClient(), pm)
    assert api.get("/api/v1/me/").json() == {
        "username": pm.username,
        "time_zone": "",
        "time_zone_in_effect": settings.TIME_ZONE,
    }

    response = api.patch("/api/v1/me/", {"time_zone": "Europe/Berlin"}, format="json")
    assert response.status_code == 200
    assert response.json()["time_zone_in_effect"] == "Europe/Berlin"
    assert Preference.objects.get(user=pm).time_zone == "Europe/Berlin"

    refused = api.patch("/api/v1/me/", {"time_zone": "Nowhere/Land"}, format="json")
    assert refused.status_code == 400
    assert "time_zone" in str(refused.json())
    assert api.patch("/api/v1/me/", {"colour": "red"}, format="json").status_code == 400
    assert APIClient().get("/api/v1/me/").status_code in (401, 403)


def test_me_is_in_the_openapi_schema(client: Any) -> None:
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/me/" in schema
    assert "decimals" in schema  # the KPI's precision, too
