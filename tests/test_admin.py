"""The Django admin as one more door into the services: it must obey the same rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from initiatives import services as initiative_services
from initiatives.models import Handover, Initiative, Phase, Status
from jobs import services as job_services
from kpis import services as kpi_services
from notifications import services as notification_services
from phases import rules
from phases.models import Criterion, Decision, GateDecision, Tick
from tests.factories import BusinessUnitFactory, decide, make_initiative, trial_run_every_kpi
from tests.test_url_access import hidden  # noqa: F401, F811 (a fixture)

REGISTERED = sorted(
    (model._meta.app_label, model._meta.model_name) for model in admin.site._registry
)


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def _management(page: Any) -> dict[str, Any]:
    """The inline management forms as the page renders them (a browser posts them back)."""
    data: dict[str, Any] = {}
    for inline in page.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        for name in form.fields:
            data[form.add_prefix(name)] = form[name].value()
    return data


def _post(client: Any, url: str, data: dict[str, Any]) -> Any:
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, {**_management(page), **data})


def _errors(response: Any) -> str:
    assert response.status_code == 200, response
    form = response.context["adminform"].form
    assert form.errors
    return str(form.errors)


def _changelist(client: Any, query: str = "") -> list[Any]:
    response = client.get(f"/admin/initiatives/initiative/{query}")
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def _story(initiative: Initiative, **changes: Any) -> dict[str, Any]:
    data = {field: getattr(initiative, field) for field in initiative_services.STORY_FIELDS}
    data.update(
        title=initiative.title,
        business_unit=initiative.business_unit_id,
        dev_timebox_weeks=initiative.dev_timebox_weeks,
    )
    data.update(changes)
    return data


@pytest.fixture
def populated(
    ready_initiative: Initiative, pm: Any, other_pm: Any, admin_user: Any, engineer: Any
) -> Initiative:
    """A row in every registered model: membership, KPI, tick, decision, iteration, handover,
    data source, job, run, measurement, token, webhook subscription and delivery, alert."""
    notification_services.webhook_subscribe(
        user=admin_user,
        url="http://127.0.0.1:9/hook",
        events=["initiative.decided"],
        allow_private_addresses=True,
    )
    initiative = decide(ready_initiative, Decision.GO, pm)
    initiative_services.iteration_add(initiative=initiative, user=pm, tried="Logistic regression")
    initiative_services.initiative_hand_over(
        initiative=initiative, to=other_pm, reason="pm moves to Risk", user=pm
    )
    job_services.data_source_save(
        user=admin_user, name="Warehouse", kind="database", url="sqlite:////tmp/w.db"
    )
    trial_run_every_kpi(initiative, user=engineer)
    kpi = initiative.kpis.get()
    kpi_services.kpi_update(kpi=kpi, user=other_pm, warning_threshold=50, critical_threshold=10)
    kpi_services.measurement_record(kpi=kpi, as_of=timezone.now(), value=20.0, origin="api")
    kpi_services.kpi_status_check(kpi=kpi)
    Token.objects.create(user=admin_user)
    # A failed sign-in: an access attempt and a failure log row (django-axes).
    Client(REMOTE_ADDR="198.51.100.7").post(
        "/accounts/login/", {"username": "pm", "password": "wrong"}
    )
    return initiative


@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_every_changelist_answers_with_data(
    admin_client: Any, populated: Initiative, app_label: str, model_name: str
) -> None:
    response = admin_client.get(f"/admin/{app_label}/{model_name}/")
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert len(response.context["cl"].result_list) >= 1


def test_initiative_changelist_runs_a_constant_number_of_queries(
    admin_client: Any, pm: Any, other_pm: Any, unit: Any
) -> None:
    marketing = BusinessUnitFactory(name="Marketing")

    def add(count: int) -> None:
        for n in range(count):
            initiative = make_initiative(
                pm, unit if n % 2 else marketing, title=f"Initiative {Initiative.objects.count()}"
            )
            if n % 3 == 0:
                initiative_services.initiative_hand_over(
                    initiative=initiative, to=other_pm, reason="Load balancing", user=pm
                )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get("/admin/initiatives/initiative/")
        assert response.status_code == 200
        return len(captured)

    add(2)
    admin_client.get("/admin/initiatives/initiative/")  # warm caches (session, content types)
    few = queries()
    add(10)
    assert Initiative.objects.count() == 12
    many = queries()
    assert few == many


def test_changelist_search_by_key_and_title(admin_client: Any, pm: Any, unit: Any) -> None:
    fraud = make_initiative(pm, unit, title="Card-fraud detection")
    churn = make_initiative(pm, unit, title="Churn forecast")
    assert _changelist(admin_client, f"?q={fraud.key}") == [fraud]
    assert _changelist(admin_client, f"?q={churn.key.lower()}") == [churn]
    assert _changelist(admin_client, "?q=churn") == [churn]
    assert _changelist(admin_client, "?q=BDO-99999") == []


def test_changelist_filters(admin_client: Any, ready_initiative: Any, pm: Any, unit: Any) -> None:
    in_dev = decide(ready_initiative, Decision.GO, pm)
    held = decide(make_initiative(pm, unit, title="Held"), Decision.HOLD, pm)
    other_unit = make_initiative(pm, BusinessUnitFactory(name="Marketing"), title="Campaigns")

    assert _changelist(admin_client, "?phase__exact=dev") == [in_dev]
    assert set(_changelist(admin_client, "?phase__exact=biz")) == {held, other_unit}
    assert _changelist(admin_client, "?status__exact=on_hold") == [held]
    assert _changelist(
        admin_client, f"?business_unit__id__exact={other_unit.business_unit_id}"
    ) == [other_unit]
    assert set(_changelist(admin_client, f"?business_unit__id__exact={unit.pk}")) == {in_dev, held}


def test_add_initiative_naming_another_program_manager(
    admin_client: Any, admin_user: Any, other_pm: Any, unit: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/initiative/add/",
        {
            "title": "Predictive maintenance",
            "business_unit": unit.pk,
            "accountable": other_pm.pk,
            "dev_timebox_weeks": 4,
            "business_problem": "Unplanned downtime on line 3.",
        },
    )
    assert response.status_code == 302
    initiative = Initiative.objects.get()
    assert initiative.accountable == other_pm
    assert initiative.created_by == admin_user
    assert (initiative.title, initiative.dev_timebox_weeks) == ("Predictive maintenance", 4)
    assert initiative.business_problem == "Unplanned downtime on line 3."
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.ACTIVE)


def test_add_initiative_with_a_non_program_manager_is_refused(
    admin_client: Any, engineer: Any, unit: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/initiative/add/",
        {
            "title": "Predictive maintenance",
            "business_unit": unit.pk,
            "accountable": engineer.pk,
            "dev_timebox_weeks": 6,
        },
    )
    assert "accountable" in _errors(response)
    assert "Select a valid choice" in response.content.decode()
    assert not Initiative.objects.exists()


def test_add_initiative_with_a_timebox_out_of_range_is_refused(
    admin_client: Any, pm: Any, unit: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/initiative/add/",
        {
            "title": "Too long",
            "business_unit": unit.pk,
            "accountable": pm.pk,
            "dev_timebox_weeks": 13,
        },
    )
    assert "dev_timebox_weeks" in _errors(response)
    assert not Initiative.objects.exists()


def test_change_form_keeps_accountable_read_only(
    admin_client: Any, initiative: Initiative, pm: Any, other_pm: Any
) -> None:
    url = f"/admin/initiatives/initiative/{initiative.pk}/change/"
    page = admin_client.get(url)
    assert "accountable" not in page.context["adminform"].form.fields

    response = admin_client.post(
        url,
        {
            **_management(page),
            **_story(initiative, title="Card-fraud detection v2", accountable=other_pm.pk),
        },
    )
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection v2"
    assert initiative.accountable == pm
    assert not Handover.objects.exists()


def test_change_form_refuses_a_blank_title(admin_client: Any, initiative: Initiative) -> None:
    url = f"/admin/initiatives/initiative/{initiative.pk}/change/"
    response = _post(admin_client, url, _story(initiative, title="   "))
    assert "title" in _errors(response)
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection"


def test_handover_through_the_admin(
    admin_client: Any, admin_user: Any, initiative: Initiative, pm: Any, other_pm: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/handover/add/",
        {"initiative": initiative.pk, "to_user": other_pm.pk, "reason": "pm goes on leave"},
    )
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    handover = Handover.objects.get()
    assert (handover.from_user, handover.to_user, handover.handed_over_by) == (
        pm,
        other_pm,
        admin_user,
    )
    assert handover.reason == "pm goes on leave"


def test_handover_to_a_non_program_manager_is_refused(
    admin_client: Any, initiative: Initiative, pm: Any, engineer: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/handover/add/",
        {"initiative": initiative.pk, "to_user": engineer.pk, "reason": "pm goes on leave"},
    )
    assert "to_user" in _errors(response)
    assert "Select a valid choice" in response.content.decode()
    initiative.refresh_from_db()
    assert initiative.accountable == pm
    assert not Handover.objects.exists()


def test_handover_to_the_current_accountable_is_refused_by_the_service(
    admin_client: Any, initiative: Initiative, pm: Any
) -> None:
    response = _post(
        admin_client,
        "/admin/initiatives/handover/add/",
        {"initiative": initiative.pk, "to_user": pm.pk, "reason": "No change"},
    )
    assert "pm is accountable already." in _errors(response)
    assert "pm is accountable already." in response.content.decode()
    assert not Handover.objects.exists()


def test_go_with_an_unmet_gate_is_refused(admin_client: Any, initiative: Initiative) -> None:
    response = _post(
        admin_client,
        "/admin/phases/gatedecision/add/",
        {"initiative": initiative.pk, "decision": "go", "rationale": "Let's build it"},
    )
    errors = _errors(response)
    content = response.content.decode()
    assert "unmet criteria" in errors
    assert "unmet criteria" in content
    for code in ("data_feasibility_confirmed", "business_signoff", "success_kpi_with_target"):
        title = Criterion.objects.get(code=code).title
        assert title in errors
        assert title in content
    assert not GateDecision.objects.exists()
    initiative.refresh_from_db()
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.ACTIVE)


def test_go_with_a_met_gate_advances(
    admin_client: Any, admin_user: Any, ready_initiative: Initiative
) -> None:
    response = _post(
        admin_client,
        "/admin/phases/gatedecision/add/",
        {"initiative": ready_initiative.pk, "decision": "go", "rationale": "Business agrees"},
    )
    assert response.status_code == 302
    ready_initiative.refresh_from_db()
    assert ready_initiative.phase == Phase.DEV
    assert ready_initiative.dev_started_at is not None
    decision = GateDecision.objects.get()
    assert (decision.decision, decision.decided_by) == (Decision.GO, admin_user)
    assert all(item["satisfied"] for item in decision.checklist)


def test_hold_through_the_admin(admin_client: Any, admin_user: Any, initiative: Initiative) -> None:
    response = _post(
        admin_client,
        "/admin/phases/gatedecision/add/",
        {"initiative": initiative.pk, "decision": "hold", "rationale": "Budget freeze"},
    )
    assert response.status_code == 302
    initiative.refresh_from_db()
    assert (initiative.phase, initiative.status) == (Phase.BIZ, Status.ON_HOLD)
    decision = GateDecision.objects.get()
    assert (decision.decision, decision.decided_by, decision.rationale) == (
        Decision.HOLD,
        admin_user,
        "Budget freeze",
    )
    assert (decision.from_status, decision.to_status) == (Status.ACTIVE, Status.ON_HOLD)


def test_a_decision_without_rationale_is_refused(admin_client: Any, initiative: Initiative) -> None:
    response = _post(
        admin_client,
        "/admin/phases/gatedecision/add/",
        {"initiative": initiative.pk, "decision": "hold", "rationale": ""},
    )
    assert "rationale" in _errors(response)
    assert not GateDecision.objects.exists()


def _assert_read_only_and_undeletable(client: Any, url: str, data: dict[str, Any]) -> None:
    page = client.get(f"{url}change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(f"{url}change/", data).status_code == 403
    assert client.get(f"{url}delete/").status_code == 403
    assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403


def test_decisions_are_read_only_and_never_deleted(
    admin_client: Any, initiative: Initiative, pm: Any
) -> None:
    decide(initiative, Decision.HOLD, pm)
    decision = GateDecision.objects.get()
    _assert_read_only_and_undeletable(
        admin_client,
        f"/admin/phases/gatedecision/{decision.pk}/",
        {"initiative": initiative.pk, "decision": "kill", "rationale": "Rewritten"},
    )
    decision.refresh_from_db()
    assert (decision.decision, decision.rationale) == (Decision.HOLD, "hold for the test")
    assert GateDecision.objects.count() == 1


def test_handovers_are_read_only_and_never_deleted(
    admin_client: Any, initiative: Initiative, pm: Any, other_pm: Any
) -> None:
    handover = initiative_services.initiative_hand_over(
        initiative=initiative, to=other_pm, reason="Leave", user=pm
    )
    _assert_read_only_and_undeletable(
        admin_client,
        f"/admin/initiatives/handover/{handover.pk}/",
        {"initiative": initiative.pk, "to_user": pm.pk, "reason": "Rewritten"},
    )
    handover.refresh_from_db()
    assert (handover.to_user, handover.reason) == (other_pm, "Leave")
    assert Handover.objects.count() == 1


def test_initiatives_cannot_be_deleted(admin_client: Any, initiative: Initiative) -> None:
    url = f"/admin/initiatives/initiative/{initiative.pk}/delete/"
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/initiatives/initiative/")
    assert "delete_selected" not in changelist.content.decode()
    bulk = admin_client.post(
        "/admin/initiatives/initiative/",
        {"action": "delete_selected", "_selected_action": [initiative.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert Initiative.objects.filter(pk=initiative.pk).exists()


def test_admin_cannot_sign_off_for_the_business(admin_client: Any, initiative: Initiative) -> None:
    signoff = Criterion.objects.get(code="business_signoff")
    response = _post(
        admin_client,
        "/admin/phases/tick/add/",
        {"initiative": initiative.pk, "criterion": signoff.pk, "note": "On their behalf"},
    )
    errors = _errors(response)
    assert "You may not tick" in errors
    assert "You may not tick" in response.content.decode()
    assert not Tick.objects.exists()


def test_admin_ticks_data_feasibility(
    admin_client: Any, admin_user: Any, initiative: Initiative
) -> None:
    feasibility = Criterion.objects.get(code="data_feasibility_confirmed")
    response = _post(
        admin_client,
        "/admin/phases/tick/add/",
        {
            "initiative": initiative.pk,
            "criterion": feasibility.pk,
            "note": "Two years of transactions",
            "evidence_url": "https://wiki.example.com/data/42",
        },
    )
    assert response.status_code == 302
    tick = Tick.objects.get()
    assert (tick.initiative, tick.criterion, tick.ticked_by) == (
        initiative,
        feasibility,
        admin_user,
    )
    assert tick.note == "Two years of transactions"


def test_automatic_criteria_are_not_offered_for_ticking(admin_client: Any, db: Any) -> None:
    page = admin_client.get("/admin/phases/tick/add/")
    offered = set(page.context["adminform"].form.fields["criterion"].queryset)
    assert offered == set(Criterion.objects.filter(kind="manual", active=True))


def test_admin_deactivates_a_criterion(admin_client: Any, initiative: Initiative) -> None:
    criterion = Criterion.objects.get(code="data_feasibility_confirmed")
    gate = criterion.gate
    assert criterion.code in {s.criterion.code for s in rules.checklist(initiative, gate)}

    response = _post(
        admin_client,
        f"/admin/phases/criterion/{criterion.pk}/change/",
        {
            "gate": gate.pk,
            "code": criterion.code,
            "title": criterion.title,
            "description": criterion.description,
            "kind": criterion.kind,
            "check_name": criterion.check_name,
            "tick_policy": criterion.tick_policy,
            "position": criterion.position,
            # "active" left out: an unticked checkbox.
        },
    )
    assert response.status_code == 302
    criterion.refresh_from_db()
    assert not criterion.active
    states = rules.checklist(initiative, gate)
    assert criterion.code not in {s.criterion.code for s in states}
    assert criterion.code not in {s.criterion.code for s in rules.unmet(states)}
    assert len(states) == gate.criteria.count() - 1


def test_criteria_cannot_be_deleted(admin_client: Any, db: Any) -> None:
    criterion = Criterion.objects.get(code="business_signoff")
    assert admin_client.get(f"/admin/phases/criterion/{criterion.pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/initiatives/initiative/", "/admin/phases/gatedecision/add/"]
)
def test_non_staff_users_are_sent_to_the_admin_login(client: Any, pm: Any, url: str) -> None:
    client.force_login(pm)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "next=" in response["Location"]


def test_a_service_write_is_undone_when_the_page_is_shown_again(
    admin_client: Any, other_pm: Any, unit: Any
) -> None:
    # Without the inline management data the inlines are invalid: the admin shows the page
    # again, so the initiative the service created while validating must not remain.
    response = admin_client.post(
        "/admin/initiatives/initiative/add/",
        {
            "title": "Predictive maintenance",
            "business_unit": unit.pk,
            "accountable": other_pm.pk,
            "dev_timebox_weeks": 4,
        },
    )
    assert response.status_code == 200
    assert not Initiative.objects.exists()


def test_staff_who_is_a_stakeholder_of_another_unit_sees_none_of_it(
    client: Any,
    make_user: Any,
    hidden: Any,  # noqa: F811 (the fixture)
) -> None:
    """The admin lists, change pages and initiative choices go through the same visibility as
    the pages (a staff account that is only a business stakeholder, with every permission)."""
    from django.contrib.auth.models import Permission

    from bizdevops.roles import Role
    from tests.factories import BusinessUnitFactory
    from tests.test_url_access import MARKERS

    staff = make_user(Role.BUSINESS_STAKEHOLDER, username="staff-lead", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())
    BusinessUnitFactory(name="Retail").stakeholders.add(staff)
    client.force_login(staff)
    pages = [
        f"/admin/{app}/{model}/"
        for app, model in [
            ("initiatives", "initiative"),
            ("initiatives", "membership"),
            ("initiatives", "iteration"),
            ("phases", "tick"),
            ("phases", "gatedecision"),
            ("kpis", "kpi"),
            ("kpis", "measurement"),
            ("jobs", "job"),
            ("jobs", "run"),
        ]
    ] + ["/admin/kpis/kpi/add/", "/admin/phases/tick/add/", "/admin/initiatives/iteration/add/"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        assert not [what for what, text in MARKERS.items() if text in content], url
    hidden_pages = [
        f"/admin/initiatives/initiative/{hidden.initiative.pk}/change/",
        f"/admin/kpis/kpi/{hidden.kpi.pk}/change/",
        f"/admin/jobs/job/{hidden.job.pk}/change/",
        f"/admin/jobs/run/{hidden.run.pk}/change/",
    ]
    for url in hidden_pages:
        # The admin's answer for an object outside its queryset: back to the list.
        response = client.get(url)
        assert response.status_code == 302, url


def test_deleting_a_user_named_in_history_is_refused_with_a_message(
    admin_client: Any, make_user: Any, initiative: Initiative
) -> None:
    """History rows refer to people with PROTECT (a cascade into a table the database keeps
    append-only would fail): the admin names what stands in the way instead of failing."""
    admin2 = make_user(username="admin2", is_superuser=True, is_staff=True)
    decide(initiative, Decision.HOLD, admin2)
    url = f"/admin/auth/user/{admin2.pk}/delete/"

    for response in (admin_client.get(url), admin_client.post(url, {"post": "yes"})):
        assert response.status_code == 200
        content = response.content.decode()
        assert "Cannot delete user" in content
        assert '<ul id="deleted-objects">\t<li>gate decision</li></ul>' in content

    assert GateDecision.objects.filter(decided_by=admin2).exists()


def test_deleting_a_user_who_was_alerted_keeps_the_alert(admin_client: Any, make_user: Any) -> None:
    """Who received an alert is not history (a user may be deleted); the alert is."""
    reader = make_user(username="reader")
    alert = notification_services.alert_record(
        kind="kpi_status",
        message="Fraud caught is red",
        recipients=[reader.pk],
        event="kpi.status_changed",
        payload={},
    )

    response = admin_client.post(f"/admin/auth/user/{reader.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.message == "Fraud caught is red"
    assert not alert.recipients.exists()
