"""Bad input: one error shape, 400 with field messages or 404, never a 500; unknown fields
refused; sizes bounded; timestamps with a time zone; finite numbers only."""

from __future__ import annotations

import base64
import json

import pytest

from initiatives.models import Handover, Initiative, Iteration, Membership
from jobs.models import DataSource, Job, Run
from kpis.models import KPI, Measurement
from phases.models import GateDecision, Tick
from tests.api.helpers import API, error_of

pytestmark = pytest.mark.django_db

# The test client raises any exception a view lets through, so "never a 500" is checked by
# every request below: a server error fails the test with its traceback.


@pytest.fixture
def admin(api_as, admin_user):
    return api_as(admin_user)


@pytest.fixture
def world(ops_initiative, ops_job):
    """The standard initiative, active in Ops, its KPI 'Fraud caught' with a job."""
    return ops_initiative


def _ops_kpi(world):
    return world.kpis.get(name="Fraud caught")


# Unknown fields


UNKNOWN_FIELD_CASES = {
    "business unit": ("post", lambda w: f"{API}/business-units/", {"name": "Risk"}),
    "create initiative": (
        "post",
        lambda w: f"{API}/initiatives/",
        {"title": "x", "business_unit": "UNIT", "accountable": "pm"},
    ),
    "patch initiative": ("patch", lambda w: f"{API}/initiatives/{w.key}/", {"title": "x"}),
    "tick": (
        "put",
        lambda w: f"{API}/initiatives/{w.key}/criteria/results_accepted/",
        {"note": "x"},
    ),
    "decision": (
        "post",
        lambda w: f"{API}/initiatives/{w.key}/decisions/",
        {"decision": "hold", "rationale": "x"},
    ),
    "handover": (
        "post",
        lambda w: f"{API}/initiatives/{w.key}/handover/",
        {"to": "pm2", "reason": "x"},
    ),
    "member": (
        "post",
        lambda w: f"{API}/initiatives/{w.key}/members/",
        {"user": "devops", "role": "devops_engineer"},
    ),
    "iteration": ("post", lambda w: f"{API}/initiatives/{w.key}/iterations/", {"tried": "x"}),
    "define KPI": ("post", lambda w: f"{API}/kpis/", {"initiative": "KEY", "name": "New KPI"}),
    "patch KPI": ("patch", lambda w: f"{API}/kpis/{_ops_kpi(w).pk}/", {"unit": "%"}),
    "push one": (
        "post",
        lambda w: f"{API}/kpis/{_ops_kpi(w).pk}/measurements/",
        {"as_of": "2026-03-01T00:00:00Z", "value": 1},
    ),
    "data source": (
        "post",
        lambda w: f"{API}/data-sources/",
        {"name": "S", "kind": "http", "url": "https://x.example.com"},
    ),
    "patch job": ("patch", lambda w: f"{API}/jobs/{Job.objects.get().pk}/", {"max_retries": 1}),
    "run job": ("post", lambda w: f"{API}/jobs/{Job.objects.get().pk}/run/", {}),
}


def _counts():
    return [
        model.objects.count()
        for model in (
            Initiative,
            Handover,
            Membership,
            Iteration,
            KPI,
            Measurement,
            DataSource,
            Job,
            Run,
            GateDecision,
            Tick,
        )
    ]


@pytest.mark.parametrize("case", list(UNKNOWN_FIELD_CASES))
def test_unknown_fields_are_refused(admin, world, other_pm, devops, unit, case):
    method, make_url, body = UNKNOWN_FIELD_CASES[case]
    body = {k: unit.pk if v == "UNIT" else world.key if v == "KEY" else v for k, v in body.items()}
    before = _counts()

    response = getattr(admin, method)(
        make_url(world), {**body, "colour": "blue", "is_superuser": True}, format="json"
    )

    assert response.status_code == 400, response.json()
    error = error_of(response)
    assert error["code"] == "invalid"
    assert error["fields"]["colour"] == ["Unknown field."]
    assert error["fields"]["is_superuser"] == ["Unknown field."]
    assert _counts() == before


def test_an_unknown_field_in_a_list_push_is_refused(admin, world):
    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/",
        [{"as_of": "2026-03-01T00:00:00Z", "value": 1, "origin": "run"}],
        format="json",
    )

    assert response.status_code == 400
    assert "Unknown field." in json.dumps(error_of(response)["fields"])
    assert not Measurement.objects.filter(origin="run").exists()


# Wrong types


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ["a", "b"], "business_unit": "UNIT"}, "title"),
        ({"title": {"a": 1}, "business_unit": "UNIT"}, "title"),
        ({"title": "x", "business_unit": "Fraud"}, "business_unit"),
        ({"title": "x", "business_unit": [1]}, "business_unit"),
        ({"title": "x", "business_unit": "UNIT", "dev_timebox_weeks": "six"}, "dev_timebox_weeks"),
        ({"title": "x", "business_unit": "UNIT", "dev_timebox_weeks": 2.5}, "dev_timebox_weeks"),
        ({"title": "x", "business_unit": "UNIT", "accountable": 1}, "accountable"),
        ({"title": "x", "business_unit": "UNIT", "use_case": ["x"]}, "use_case"),
        ({"title": None, "business_unit": "UNIT"}, "title"),
    ],
)
def test_wrong_types_for_an_initiative(admin, pm, unit, body, field):
    body = {k: unit.pk if v == "UNIT" else v for k, v in body.items()}

    response = admin.post(f"{API}/initiatives/", body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Initiative.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": "high"}, "target"),
        ({"target": [1]}, "target"),
        ({"direction": 1}, "direction"),
        ({"name": {"x": 1}}, "name"),
    ],
)
def test_wrong_types_for_a_kpi(admin, world, body, field):
    kpi = _ops_kpi(world)

    response = admin.patch(f"{API}/kpis/{kpi.pk}/", body, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    kpi.refresh_from_db()
    assert (kpi.name, kpi.target, kpi.direction) == ("Fraud caught", 90.0, "higher")


@pytest.mark.parametrize(
    "item",
    [
        {"as_of": "2026-03-01T00:00:00Z", "value": "abc"},
        {"as_of": "2026-03-01T00:00:00Z", "value": None},
        {"as_of": "2026-03-01T00:00:00Z", "value": [1]},
        {"as_of": "2026-03-01T00:00:00Z"},
        {"as_of": 1767225600, "value": 1},
        {"as_of": None, "value": 1},
        {"as_of": "yesterday", "value": 1},
        {"value": 1},
    ],
)
def test_wrong_types_for_a_measurement(admin, world, item):
    response = admin.post(f"{API}/kpis/{_ops_kpi(world).pk}/measurements/", item, format="json")

    assert response.status_code == 400
    assert error_of(response)["fields"]
    assert not Measurement.objects.exists()


@pytest.mark.parametrize("body", ['"a string"', "42", "null", "[1, 2]", "[[]]", "{"])
def test_a_push_body_of_the_wrong_shape(admin, world, body):
    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/", body, content_type="application/json"
    )

    assert response.status_code == 400
    error_of(response)
    assert not Measurement.objects.exists()


@pytest.mark.parametrize("body", ["[]", "[1]", '"x"', "{", "not json"])
def test_a_body_that_is_not_an_object(admin, unit, body):
    response = admin.post(f"{API}/initiatives/", body, content_type="application/json")

    assert response.status_code == 400
    error_of(response)


def test_an_unsupported_media_type_is_415(admin, unit):
    response = admin.post(f"{API}/initiatives/", "<xml/>", content_type="application/xml")

    assert response.status_code == 415
    error_of(response)


# Sizes


@pytest.mark.parametrize(
    ("method", "make_url", "body", "field"),
    [
        ("post", lambda w: f"{API}/initiatives/", {"title": "t" * 201}, "title"),
        (
            "post",
            lambda w: f"{API}/initiatives/",
            {"title": "t", "use_case": "u" * 20_001},
            "use_case",
        ),
        ("post", lambda w: f"{API}/business-units/", {"name": "n" * 101}, "name"),
        (
            "post",
            lambda w: f"{API}/initiatives/{w.key}/handover/",
            {"to": "pm2", "reason": "r" * 5001},
            "reason",
        ),
        (
            "post",
            lambda w: f"{API}/initiatives/{w.key}/decisions/",
            {"decision": "hold", "rationale": "r" * 10_001},
            "rationale",
        ),
        (
            "put",
            lambda w: f"{API}/initiatives/{w.key}/criteria/results_accepted/",
            {"note": "n" * 2001},
            "note",
        ),
        ("patch", lambda w: f"{API}/kpis/{_ops_kpi(w).pk}/", {"name": "n" * 121}, "name"),
        ("patch", lambda w: f"{API}/kpis/{_ops_kpi(w).pk}/", {"unit": "u" * 31}, "unit"),
        (
            "post",
            lambda w: f"{API}/kpis/",
            {"initiative": "BDO-" + "1" * 17, "name": "x"},
            "initiative",
        ),
        (
            "post",
            lambda w: f"{API}/data-sources/",
            {"name": "S", "kind": "http", "url": "https://x.example.com/" + "p" * 2000},
            "url",
        ),
        ("patch", lambda w: f"{API}/jobs/{Job.objects.get().pk}/", {"cron": "*" * 101}, "cron"),
        ("patch", lambda w: f"{API}/jobs/{Job.objects.get().pk}/", {"sql": "s" * 20_001}, "sql"),
        (
            "patch",
            lambda w: f"{API}/jobs/{Job.objects.get().pk}/",
            {"interval_seconds": 10**12},
            "interval_seconds",
        ),
    ],
)
def test_too_long_or_too_large_input_is_refused(
    admin, world, other_pm, unit, method, make_url, body, field
):
    if make_url(world) == f"{API}/initiatives/":
        body = {"business_unit": unit.pk, "accountable": "pm", **body}
    before = _counts()

    response = getattr(admin, method)(make_url(world), body, format="json")

    assert response.status_code == 400, response.json()
    assert field in error_of(response)["fields"]
    assert _counts() == before


def test_too_many_values_are_refused_before_any_write(admin, world):
    kpi = _ops_kpi(world)
    values = [{"as_of": f"2026-01-01T00:00:{i % 60:02d}Z", "value": i} for i in range(10_001)]

    response = admin.post(f"{API}/kpis/{kpi.pk}/measurements/", values, format="json")

    assert response.status_code == 400
    assert not Measurement.objects.filter(kpi=kpi).exists()


def test_list_pages_are_bounded(admin, pm, unit):
    Initiative.objects.bulk_create(
        Initiative(title=f"Bulk {n}", business_unit=unit, accountable=pm, created_by=pm)
        for n in range(205)
    )

    response = admin.get(f"{API}/initiatives/", {"page_size": 100_000})

    assert response.status_code == 200
    assert response.json()["count"] == 205
    assert len(response.json()["results"]) == 200  # max_page_size


@pytest.mark.parametrize("path", ["initiatives/", "kpis/{kpi}/measurements/"])
def test_an_oversized_body_is_refused_in_the_api_error_shape(admin, world, settings, path):
    # Django bounds the body (DATA_UPLOAD_MAX_MEMORY_SIZE); the API must still answer in its
    # own JSON error shape, not with the HTML 400 page.
    body = '{"as_of": "2026-03-01T00:00:00Z", "value": 1}'
    body += " " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    url = f"{API}/" + path.format(kpi=_ops_kpi(world).pk)

    response = admin.post(url, body, content_type="application/json")

    assert response.status_code in (400, 413)
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error_of(response)
    assert not Measurement.objects.exists()


def test_raw_measurement_pages_are_bounded(admin, world):
    response = admin.get(f"{API}/kpis/{_ops_kpi(world).pk}/measurements/", {"page_size": 5001})

    assert response.status_code == 400


# Time zones


@pytest.mark.parametrize(
    "as_of",
    [
        "2026-03-01T12:00:00",
        "2026-03-01 12:00:00",
        "2026-03-01T12:00",
        "2026-03-01",
        " 2026-03-01T12:00:00 ",
    ],
)
def test_a_naive_timestamp_is_refused(admin, world, as_of):
    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/",
        {"as_of": as_of, "value": 1},
        format="json",
    )

    assert response.status_code == 400
    assert "as_of" in error_of(response)["fields"]
    assert not Measurement.objects.exists()


@pytest.mark.parametrize(
    "as_of", ["2026-03-01T12:00:00Z", "2026-03-01T13:00:00+01:00", "2026-03-01T07:00:00-05:00"]
)
def test_an_aware_timestamp_is_accepted(admin, world, as_of):
    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/",
        {"as_of": as_of, "value": 1},
        format="json",
    )

    assert response.status_code == 200
    assert Measurement.objects.get().as_of.isoformat() == "2026-03-01T12:00:00+00:00"


@pytest.mark.parametrize(
    "as_of", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "2026-13-01T00:00:00Z"]
)
def test_an_impossible_timestamp_is_400(admin, world, as_of):
    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/",
        {"as_of": as_of, "value": 1},
        format="json",
    )

    assert response.status_code == 400
    assert "as_of" in error_of(response)["fields"]


def test_a_naive_range_is_refused(admin, world):
    response = admin.get(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/",
        {"from": "2026-03-01T00:00:00", "to": "2026-03-02T00:00:00"},
    )

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"from", "to"}


# Finite numbers


@pytest.mark.parametrize(
    "value",
    [
        '"NaN"',
        '"nan"',
        '"Infinity"',
        '"-Infinity"',
        '"inf"',
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        '"1e999"',
        "1" + "0" * 400,
        '"' + "9" * 2000 + '"',
    ],
)
def test_a_measurement_must_be_a_finite_number(admin, world, value):
    body = '{"as_of": "2026-03-01T00:00:00Z", "value": ' + value + "}"

    response = admin.post(
        f"{API}/kpis/{_ops_kpi(world).pk}/measurements/", body, content_type="application/json"
    )

    assert response.status_code == 400
    error_of(response)
    assert not Measurement.objects.exists()


@pytest.mark.parametrize("value", ['"NaN"', '"Infinity"', "1e999", "1" + "0" * 400])
@pytest.mark.parametrize("field", ["target", "warning_threshold", "critical_threshold"])
def test_kpi_numbers_must_be_finite(admin, world, field, value):
    kpi = _ops_kpi(world)

    response = admin.patch(
        f"{API}/kpis/{kpi.pk}/", '{"' + field + '": ' + value + "}", content_type="application/json"
    )

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    kpi.refresh_from_db()
    assert kpi.target == 90.0


def test_large_finite_numbers_are_kept(admin, world):
    # Up to MEASUREMENT_MAX_ABS_VALUE (1e15); beyond it see tests/api/test_hostile_input.py.
    kpi = _ops_kpi(world)

    response = admin.post(
        f"{API}/kpis/{kpi.pk}/measurements/",
        {"as_of": "2026-03-01T00:00:00Z", "value": -1e15},
        format="json",
    )

    assert response.status_code == 200
    assert Measurement.objects.get().value == -1e15
    raw = admin.get(f"{API}/kpis/{kpi.pk}/measurements/").json()["results"]
    assert raw[0][1] == -1e15


# Keys and ids


KEYED_PATHS = [
    ("get", "initiatives/{key}/"),
    ("patch", "initiatives/{key}/"),
    ("get", "initiatives/{key}/gate/"),
    ("put", "initiatives/{key}/criteria/business_signoff/"),
    ("delete", "initiatives/{key}/criteria/business_signoff/"),
    ("post", "initiatives/{key}/decisions/"),
    ("get", "initiatives/{key}/history/"),
    ("post", "initiatives/{key}/handover/"),
    ("get", "initiatives/{key}/members/"),
    ("post", "initiatives/{key}/members/"),
    ("delete", "initiatives/{key}/members/1/"),
    ("get", "initiatives/{key}/iterations/"),
    ("post", "initiatives/{key}/iterations/"),
]
BAD_KEYS = [
    "BDO-x",
    "BDO-0",
    "BDO-01",
    "BDO--1",
    "BDO-1.0",
    "BDO-",
    "1",
    "XYZ-1",
    "BDO-999999",
    "BDO-99999999999999999999999",
]


@pytest.mark.parametrize(("method", "path"), KEYED_PATHS)
@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_malformed_or_unknown_key_is_404(admin, initiative, method, path, key):
    url = f"{API}/" + path.format(key=key)

    if method in ("get", "delete"):
        response = getattr(admin, method)(url)
    else:
        response = getattr(admin, method)(url, {}, format="json")

    assert response.status_code == 404, response.json()
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "kpis/{n}/",
        "kpis/{n}/measurements/",
        "jobs/{n}/",
        "jobs/{n}/runs/",
        "runs/{n}/",
    ],
)
@pytest.mark.parametrize("n", ["0", "999999", "99999999999999999999999"])
def test_an_unknown_id_is_404(admin, db, path, n):
    response = admin.get(f"{API}/" + path.format(n=n))

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_an_unknown_member_id_is_404(admin, initiative):
    response = admin.delete(f"{API}/initiatives/{initiative.key}/members/99999999999999999999999/")

    assert response.status_code == 404


@pytest.mark.parametrize("code", ["no_such_code", "business-signoff", "BUSINESS_SIGNOFF"])
def test_an_unknown_criterion_code_is_404(admin, initiative, code):
    client = admin

    put = client.put(f"{API}/initiatives/{initiative.key}/criteria/{code}/")
    delete = client.delete(f"{API}/initiatives/{initiative.key}/criteria/{code}/")

    assert (put.status_code, delete.status_code) == (404, 404)
    error_of(put)
    assert not Tick.objects.exists()


def test_an_invalid_decision_is_400(admin, initiative):
    response = admin.post(
        f"{API}/initiatives/{initiative.key}/decisions/",
        {"decision": "approve", "rationale": "x"},
        format="json",
    )

    assert response.status_code == 400
    assert "decision" in error_of(response)["fields"]


def test_a_refused_go_is_409_with_every_unmet_code(admin, initiative):
    response = admin.post(
        f"{API}/initiatives/{initiative.key}/decisions/",
        {"decision": "go", "rationale": "x"},
        format="json",
    )

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "gate_not_met"
    assert error["unmet"] == [
        "problem_and_requirements",
        "use_case_and_algorithm",
        "data_feasibility_confirmed",
        "success_kpi_with_target",
        "team_has_engineer_and_scientist",
        "business_signoff",
    ]


# Query strings


@pytest.mark.parametrize(
    "query",
    [
        {"page": "abc"},
        {"page": "0"},
        {"page": "999"},
        {"page": "99999999999999999999999"},
    ],
)
def test_a_bad_page_is_404(admin, initiative, query):
    response = admin.get(f"{API}/initiatives/", query)

    assert response.status_code == 404
    error_of(response)


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("initiatives/", {"business_unit": "1e400"}, 400),
        ("initiatives/", {"business_unit": "-5"}, 400),  # ids are positive
        ("initiatives/", {"search": "BDO-99999999999999999999999"}, 200),
        ("initiatives/", {"search": "x" * 201}, 400),
        ("initiatives/", {"accountable": "x" * 5000}, 200),
        ("kpis/", {"initiative": "BDO-9999999999999999"}, 200),
        ("kpis/", {"initiative": "BDO-99999999999999999999999"}, 400),
        ("jobs/", {"kpi": "99999999999999999999999"}, 400),
        ("jobs/", {"initiative": "BDO-9999999999999999"}, 200),
    ],
)
def test_odd_filter_values_find_nothing_or_are_400(admin, initiative, path, query, status):
    response = admin.get(f"{API}/{path}", query)

    assert response.status_code == status
    if status == 200:
        assert response.json()["results"] == []
    else:
        assert set(error_of(response)["fields"]) == set(query)


def test_a_business_unit_id_beyond_64_bits_is_not_a_server_error(admin, initiative):
    response = admin.get(f"{API}/initiatives/", {"business_unit": "9" * 23})

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["results"] == []
    else:
        assert "business_unit" in error_of(response)["fields"]


def test_a_fractional_business_unit_id_is_400_not_rounded(admin, initiative):
    # business_unit=1.5 must not quietly mean unit 1.
    response = admin.get(
        f"{API}/initiatives/", {"business_unit": f"{initiative.business_unit_id}.5"}
    )

    assert response.status_code == 400
    assert "business_unit" in error_of(response)["fields"]


def test_an_unknown_ordering_is_ignored(admin, initiative):
    response = admin.get(f"{API}/initiatives/", {"ordering": "accountable__password"})

    assert response.status_code == 200
    assert [row["key"] for row in response.json()["results"]] == [initiative.key]


def _cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        _cursor("o=-1"),
        _cursor("r=x"),
        _cursor("p=not-a-timestamp"),
        _cursor("p=2026-99-99T00:00:00Z"),
    ],
)
def test_a_forged_cursor_is_refused_not_a_server_error(admin, world, cursor):
    response = admin.get(f"{API}/kpis/{_ops_kpi(world).pk}/measurements/", {"cursor": cursor})

    assert response.status_code in (400, 404)
    error_of(response)
