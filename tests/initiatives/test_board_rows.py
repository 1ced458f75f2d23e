"""The board reads its cards as plain rows and writes its filter selects itself: what it
shows is what the model and Django's widgets say, whatever the state of an initiative or the
filters asked for; a unit choice is checked and listed in one query."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from initiatives import selectors
from initiatives.filters import InitiativeFilter
from initiatives.models import BusinessUnit, Initiative
from tests.factories import BusinessUnitFactory, make_initiative

pytestmark = pytest.mark.django_db


@pytest.fixture
def varied(pm: Any, other_pm: Any, unit: BusinessUnit) -> list[Initiative]:
    """Initiatives in Dev with time left, overdue by hours or weeks, without a start and on
    hold, in Biz and Ops; accountables with and without a full name."""
    other_pm.first_name, other_pm.last_name = "Ada", "Lovelace"
    other_pm.save()
    other_unit = BusinessUnitFactory(name="Ünits & «quotes»")
    now = timezone.now()
    shapes = [
        {"phase": "dev", "dev_started_at": now - dt.timedelta(days=3, hours=5)},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=6, hours=2)},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=9)},
        {"phase": "dev", "dev_started_at": None},
        {"phase": "dev", "dev_started_at": now - dt.timedelta(weeks=9), "status": "on_hold"},
        {"phase": "biz"},
        {"phase": "ops", "dev_started_at": now - dt.timedelta(weeks=30)},
    ]
    made = []
    for n, shape in enumerate(shapes):
        owner, where = (pm, unit) if n % 2 else (other_pm, other_unit)
        initiative = make_initiative(
            owner, where, title=f'Shape {n} <b>"&"</b>', dev_timebox_weeks=3 + n % 4
        )
        if n % 2:
            Initiative.objects.filter(pk=initiative.pk).update(accountable=other_pm)
        # Straight to the state to show: a representation test, not a flow.
        Initiative.objects.filter(pk=initiative.pk).update(**shape)
        made.append(initiative)
    return made


def test_cards_read_as_rows_say_what_the_model_says(admin_user: Any, varied: Any) -> None:
    listed = selectors.open_initiatives_visible_to(admin_user)
    cards = {c.pk: c for column in selectors.board_columns(listed) for c in column.cards}
    models = {i.pk: i for i in listed.select_related("business_unit", "accountable")}

    assert set(cards) == set(models) and len(cards) == len(varied)
    for pk, model in models.items():
        card = cards[pk]
        assert card.key == model.key
        assert card.title == model.title
        assert card.phase == model.phase and card.status == model.status
        assert card.dev_due_at == model.dev_due_at
        assert card.dev_days_left == model.dev_days_left
        assert card.business_unit_name == model.business_unit.name
        accountable = model.accountable
        assert card.accountable_name == (accountable.get_full_name() or accountable.get_username())
        assert card.kpi_count == model.kpi_count  # type: ignore[attr-defined]
    left = [c.dev_days_left for c in cards.values()]
    assert None in left
    assert any(days is not None and days > 0 for days in left)
    assert any(days is not None and days < 0 for days in left)


def _request(user: Any, data: dict[str, str]) -> Any:
    request = RequestFactory().get("/board/", data)
    request.user = user
    return request


FILTERS = [
    {},
    {"page_dev": "2"},
    {"unit": "{unit}"},
    {"unit": "0{unit}"},  # as the database compares an id
    {"unit": "nonsense", "accountable": "nobody", "status": "zzz"},
    {"unit": "99999"},
    {"accountable": "pm2", "status": "on_hold"},
    {"accountable": "PM2"},  # usernames compare exactly
    {"status": "active", "q": "Shape", "mine": "true"},
]


@pytest.mark.parametrize("data", FILTERS, ids=[str(d) for d in FILTERS])
@pytest.mark.parametrize("who", ["admin_user", "stakeholder"])
def test_the_board_selects_write_what_their_widgets_write(
    request: Any, varied: Any, unit: BusinessUnit, data: dict[str, str], who: str
) -> None:
    user = request.getfixturevalue(who)
    data = {name: value.format(unit=unit.pk) for name, value in data.items()}
    filters = InitiativeFilter(
        data or None,
        queryset=selectors.open_initiatives_visible_to(user),
        request=_request(user, data),
    )
    form = filters.form
    for name in ("unit", "accountable", "status"):
        ours = render_to_string("initiatives/board.html#select", {"field": form[name]})
        assert ours == str(form[name])  # the widget's own markup


@pytest.mark.parametrize(
    ("value", "valid"),
    [("{unit}", True), ("0{unit}", True), ("{other}", False), ("x", False), ("1.0", False)],
)
def test_a_unit_choice_is_checked_among_the_units_the_user_sees(
    stakeholder: Any, unit: BusinessUnit, value: str, valid: bool
) -> None:
    other = BusinessUnitFactory(name="Not theirs")
    data = {"unit": value.format(unit=unit.pk, other=other.pk)}
    filters = InitiativeFilter(
        data,
        queryset=selectors.open_initiatives_visible_to(stakeholder),
        request=_request(stakeholder, data),
    )

    assert filters.form.is_valid() is valid
    if valid:
        assert filters.form.cleaned_data["unit"] == unit
    else:
        assert list(filters.form.errors) == ["unit"]
        assert "Select a valid choice." in filters.form.errors["unit"][0]


def test_the_unit_choice_is_checked_and_listed_in_one_query(
    admin_user: Any, unit: BusinessUnit
) -> None:
    BusinessUnitFactory(name="Another")
    data = {"unit": str(unit.pk)}
    filters = InitiativeFilter(
        data,
        queryset=selectors.open_initiatives_visible_to(admin_user),
        request=_request(admin_user, data),
    )
    with CaptureQueriesContext(connection) as captured:
        assert filters.form.is_valid()
        html = render_to_string("initiatives/board.html#select", {"field": filters.form["unit"]})

    units = [q for q in captured.captured_queries if "initiatives_businessunit" in q["sql"]]
    assert len(units) == 1, units
    assert f'<option value="{unit.pk}" selected>Fraud</option>' in html
