"""Token and session authentication of the API."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from initiatives.models import Initiative
from tests.api.helpers import API, error_of

pytestmark = pytest.mark.django_db

TOKEN_URL = f"{API}/auth/token/"


def test_good_credentials_give_the_users_token(api, pm):
    response = api.post(TOKEN_URL, {"username": "pm", "password": "pw"}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"token"}
    assert response.json()["token"] == Token.objects.get(user=pm).key


def test_asking_twice_gives_the_same_token(api, pm):
    first = api.post(TOKEN_URL, {"username": "pm", "password": "pw"}, format="json")
    second = api.post(TOKEN_URL, {"username": "pm", "password": "pw"}, format="json")

    assert first.json()["token"] == second.json()["token"]
    assert Token.objects.filter(user=pm).count() == 1


def test_the_token_authenticates_requests(api, pm, initiative):
    token = api.post(TOKEN_URL, {"username": "pm", "password": "pw"}, format="json").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    response = client.get(f"{API}/initiatives/")

    assert response.status_code == 200
    assert [row["key"] for row in response.json()["results"]] == [initiative.key]


def test_form_encoded_credentials_work_too(api, pm):
    response = api.post(TOKEN_URL, {"username": "pm", "password": "pw"})

    assert response.status_code == 200
    assert response.json()["token"]


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "pm", "password": "wrong"},
        {"username": "nobody", "password": "pw"},
        {"username": "PM ", "password": "pw"},
    ],
)
def test_bad_credentials_are_refused_with_400(api, pm, credentials):
    response = api.post(TOKEN_URL, credentials, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert "token" not in response.json()
    assert not Token.objects.exists()


def test_an_inactive_user_gets_no_token(api, make_user):
    make_user(username="gone", is_active=False)

    response = api.post(TOKEN_URL, {"username": "gone", "password": "pw"}, format="json")

    assert response.status_code == 400
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("body", "missing"),
    [({"username": "pm"}, {"password"}), ({}, {"username", "password"})],
)
def test_missing_credentials_are_named(api, pm, body, missing):
    response = api.post(TOKEN_URL, body, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == missing


def test_the_token_endpoint_takes_only_post(api, pm):
    assert api.get(TOKEN_URL).status_code == 405


def test_no_credentials_is_401_with_a_challenge(api, initiative):
    response = api.get(f"{API}/initiatives/")

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    "header", ["Token 0000000000000000000000000000000000000000", "Token", "Token a b"]
)
def test_a_bad_token_is_401(api, pm, header):
    Token.objects.create(user=pm)
    api.credentials(HTTP_AUTHORIZATION=header)

    response = api.get(f"{API}/initiatives/")

    assert response.status_code == 401
    error_of(response)


def test_the_token_of_a_deactivated_user_stops_working(api_as, pm, initiative):
    client = api_as(pm)
    assert client.get(f"{API}/initiatives/").status_code == 200
    pm.is_active = False
    pm.save(update_fields=["is_active"])

    assert client.get(f"{API}/initiatives/").status_code == 401


# Sessions


def _payload(unit):
    return {"title": "Churn radar", "business_unit": unit.pk}


def test_a_session_reads_without_csrf(pm, initiative):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="pm", password="pw")  # axes needs a request

    response = client.get(f"{API}/initiatives/{initiative.key}/")

    assert response.status_code == 200
    assert response.json()["key"] == initiative.key


def test_a_session_post_without_csrf_is_refused(pm, unit):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="pm", password="pw")  # axes needs a request

    response = client.post(f"{API}/initiatives/", _payload(unit), format="json")

    assert response.status_code == 403
    assert "CSRF" in error_of(response)["message"]
    assert not Initiative.objects.filter(title="Churn radar").exists()


def test_a_session_post_with_a_wrong_csrf_token_is_refused(pm, unit):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="pm", password="pw")  # axes needs a request
    client.get("/accounts/login/")  # sets the csrftoken cookie

    response = client.post(
        f"{API}/initiatives/", _payload(unit), format="json", HTTP_X_CSRFTOKEN="x" * 64
    )

    assert response.status_code == 403
    assert not Initiative.objects.filter(title="Churn radar").exists()


def test_a_session_post_with_the_csrf_token_is_accepted(pm, unit):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="pm", password="pw")  # axes needs a request
    client.get("/accounts/login/")  # sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value

    response = client.post(
        f"{API}/initiatives/", _payload(unit), format="json", HTTP_X_CSRFTOKEN=csrf
    )

    assert response.status_code == 201, response.json()
    assert Initiative.objects.get(title="Churn radar").accountable == pm


def test_a_token_request_needs_no_csrf(api_as, pm, unit):
    client = api_as(pm)
    client.handler.enforce_csrf_checks = True

    response = client.post(f"{API}/initiatives/", _payload(unit), format="json")

    assert response.status_code == 201


READ_PATHS = [
    "business-units/",
    "initiatives/",
    "initiatives/{key}/",
    "initiatives/{key}/gate/",
    "initiatives/{key}/history/",
    "initiatives/{key}/members/",
    "initiatives/{key}/iterations/",
    "kpis/",
    "kpis/{kpi}/",
    "kpis/{kpi}/measurements/",
    "data-sources/",
    "jobs/",
    "jobs/{job}/",
    "jobs/{job}/runs/",
    "runs/{run}/",
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_every_read_needs_authentication(api, path, ops_initiative, ops_kpi, ops_job):
    run = ops_job.runs.first()
    url = f"{API}/" + path.format(
        key=ops_initiative.key, kpi=ops_kpi.pk, job=ops_job.pk, run=run.pk
    )

    response = api.get(url)

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("path", [p for p in READ_PATHS if p != "data-sources/"])
def test_every_read_is_open_to_any_signed_in_user(
    api_as, stakeholder, path, ops_initiative, ops_kpi, ops_job
):
    run = ops_job.runs.first()
    url = f"{API}/" + path.format(
        key=ops_initiative.key, kpi=ops_kpi.pk, job=ops_job.pk, run=run.pk
    )

    assert api_as(stakeholder).get(url).status_code == 200
