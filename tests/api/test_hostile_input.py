"""Hostile input through the API: JSON nested deeper than the parser allows, measurement
values and timestamps out of range, control and bidirectional-override characters in the
texts other users see. Each answers 400 with a clear message and writes nothing."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import API, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(api_as, admin_user):
    return api_as(admin_user)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [100_000, 65])
def test_deeply_nested_json_body_is_refused(admin, ops_kpi, depth):
    before = ops_kpi.measurements.count()
    response = admin.post(
        f"{API}/kpis/{ops_kpi.pk}/measurements/", _deep(depth), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    error = error_of(response)
    assert "nested" in error["message"], error
    assert ops_kpi.measurements.count() == before


def test_deeply_nested_json_to_the_token_endpoint_is_refused(client):
    # DRF's token view names its own parsers: the depth limit did not reach it (a 500).
    response = client.post(f"{API}/auth/token/", _deep(100_000), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in error_of(response)["message"]


# Measurements out of range


def _murl(kpi) -> str:
    return f"{API}/kpis/{kpi.pk}/measurements/"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"as_of": "2026-03-01T00:00:00Z", "value": 1e308}, "value"),
        ({"as_of": "2026-03-01T00:00:00Z", "value": -1.5e15}, "value"),
        ({"as_of": "9999-12-30T00:00:00Z", "value": 1}, "as_of"),
        ({"as_of": "1969-12-31T23:59:59Z", "value": 1}, "as_of"),
    ],
)
def test_a_pushed_value_out_of_range_is_a_field_error(admin, ops_kpi, body, field):
    response = admin.post(_murl(ops_kpi), body, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert set(error["fields"]) == {field}, error
    assert not ops_kpi.measurements.exists()


def test_a_batch_push_names_the_item_at_fault_and_writes_nothing(admin, ops_kpi):
    items = [{"as_of": f"2026-03-0{i + 1}T00:00:00Z", "value": i} for i in range(5)]
    items[1]["as_of"] = "9999-12-31T00:00:00Z"
    items[3]["value"] = 1e308

    response = admin.post(_murl(ops_kpi), items, format="json")

    assert response.status_code == 400
    fields = error_of(response)["fields"]
    assert set(fields) == {"[1].as_of", "[3].value"}, fields
    assert all(isinstance(m, str) for messages in fields.values() for m in messages)
    assert "future" in fields["[1].as_of"][0]
    assert not ops_kpi.measurements.exists()


def test_the_charts_of_a_huge_pushed_value_are_never_reached(admin, ops_kpi):
    # The attack: push 1e308 twice, then every bucketed chart of the KPI was a 500.
    for day in ("01", "02"):
        admin.post(_murl(ops_kpi), {"as_of": f"2026-03-{day}T00:00:00Z", "value": 1e308})
    response = admin.get(_murl(ops_kpi), {"bucket": "month"})

    assert response.status_code == 200
    assert response.json()["results"] == []


# Control and bidirectional-override characters

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Fraud\u202egnp.exe" shows as "Fraudexe.png"


def _initiative_body(unit, **changes):
    return {"title": "Churn forecast", "business_unit": unit.pk, **changes}


@pytest.fixture
def pm_api(api_as, pm):
    return api_as(pm)


@pytest.mark.parametrize(
    "title",
    [
        f"Fraud{RLO}gnp.exe",
        "Fraud\u2066isolate",
        "Fraud\u200fmark",
        "Red \x1b[31malert",
        "Two\nlines",
        "Tab\there",
        "C1\x85next line",
        "Zero\u200bwidth",
    ],
)
def test_a_title_with_control_or_bidi_characters_is_a_field_error(pm_api, unit, title):
    body = json.dumps(_initiative_body(unit, title=title))  # ASCII, "\ud800" escaped
    response = pm_api.post(f"{API}/initiatives/", body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    fields = error_of(response)["fields"]
    assert set(fields) == {"title"}, fields
    assert "character" in fields["title"][0]
    from initiatives.models import Initiative

    assert not Initiative.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [{"title": "Lone \ud800 surrogate"}, {"accountable": "\udfff"}, {"\ud83d": "key"}],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_refused(pm_api, unit, changes):
    # Half a UTF-16 pair is no character: written to or looked up in the database it was a
    # UnicodeEncodeError (a 500).
    body = json.dumps(_initiative_body(unit, **changes))
    response = pm_api.post(f"{API}/initiatives/", body, content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in error_of(response)["message"]
    from initiatives.models import Initiative

    assert not Initiative.objects.exists()


def test_a_surrogate_pair_is_one_character_and_kept(pm_api, unit):
    body = json.dumps(_initiative_body(unit, title="Launch \U0001f680"))  # "\ud83d\ude80"
    assert "\\ud83d\\ude80" in body
    response = pm_api.post(f"{API}/initiatives/", body, content_type="application/json")

    assert response.status_code == 201
    assert response.json()["title"] == "Launch \U0001f680"


def test_multi_line_text_keeps_newlines_and_tabs_but_not_overrides(pm_api, unit):
    story = "First line\r\nSecond line\n\tindented"
    ok = pm_api.post(
        f"{API}/initiatives/", _initiative_body(unit, business_problem=story), format="json"
    )
    assert ok.status_code == 201, ok.json()
    assert ok.json()["business_problem"] == story

    refused = pm_api.post(
        f"{API}/initiatives/",
        _initiative_body(unit, title="Other", business_problem=f"Fine\n{RLO}evil"),
        format="json",
    )
    assert refused.status_code == 400
    assert set(error_of(refused)["fields"]) == {"business_problem"}


def test_letters_of_every_script_and_emoji_are_kept(pm_api, unit):
    title = "Prévision مبيعات 売上予測 👩\u200d💻 می\u200cخواهم"  # ZWJ emoji, ZWNJ in Persian
    response = pm_api.post(
        f"{API}/initiatives/", _initiative_body(unit, title=title), format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["title"] == title


def test_a_kpi_unit_with_an_override_is_a_field_error(admin, ops_kpi):
    response = admin.patch(f"{API}/kpis/{ops_kpi.pk}/", {"unit": f"{RLO}%"}, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"unit"}
    ops_kpi.refresh_from_db()
    assert RLO not in ops_kpi.unit


def test_a_business_unit_name_with_an_override_is_a_field_error(admin):
    response = admin.post(f"{API}/business-units/", {"name": f"Risk{RLO}"}, format="json")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"name"}


def test_a_data_source_name_with_a_control_is_a_field_error(admin):
    response = admin.post(
        f"{API}/data-sources/",
        {"name": "Ware\x07house", "kind": "http", "url": "https://x.example.com"},
        format="json",
    )

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"name"}


def test_a_gate_rationale_with_an_override_is_a_field_error(api_as, pm, ops_initiative):
    response = api_as(pm).post(
        f"{API}/initiatives/{ops_initiative.key}/decisions/",
        {"decision": "hold", "rationale": f"Waiting{RLO}"},
        format="json",
    )

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"rationale"}
