from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from bizdevops.errors import ConflictError, DomainError
from bizdevops.roles import Role
from initiatives import selectors
from initiatives.models import (
    TIMEBOX_DEFAULT_WEEKS,
    TIMEBOX_MAX_WEEKS,
    TIMEBOX_MIN_WEEKS,
    Initiative,
    Phase,
    Status,
)
from initiatives.services import initiative_create, initiative_update
from phases.models import Decision
from tests.factories import FULL_STORY, BusinessUnitFactory, decide

pytestmark = pytest.mark.django_db


def _domain_error(excinfo: pytest.ExceptionInfo[DomainError], field: str | None) -> DomainError:
    """A plain DomainError (a 400), not its ConflictError subclass (a 409), on `field`."""
    error = excinfo.value
    assert type(error) is DomainError
    assert error.field == field
    return error


# initiative_create


def test_program_manager_creates_and_becomes_accountable(pm, unit):
    before = timezone.now()

    initiative = initiative_create(user=pm, title="  Churn prediction  ", business_unit=unit)

    initiative.refresh_from_db()
    assert initiative.accountable == pm
    assert initiative.created_by == pm
    assert initiative.business_unit == unit
    assert initiative.title == "Churn prediction"
    assert initiative.phase == Phase.BIZ
    assert initiative.status == Status.ACTIVE
    assert initiative.dev_started_at is None
    assert initiative.phase_entered_at >= before
    assert initiative.handovers.count() == 0
    assert initiative.memberships.count() == 0


def test_key_is_prefix_and_primary_key(pm, unit):
    first = initiative_create(user=pm, title="First", business_unit=unit)
    second = initiative_create(user=pm, title="Second", business_unit=unit)

    assert first.key == f"BDO-{first.pk}"
    assert second.key == f"BDO-{second.pk}"
    assert first.key != second.key
    assert selectors.initiative_get(second.key, pm) == second


@pytest.mark.parametrize("who", ["engineer", "scientist", "devops", "stakeholder"])
def test_only_program_managers_and_admins_create(request, who, unit):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        initiative_create(user=user, title="Not mine to start", business_unit=unit)

    assert not Initiative.objects.exists()


def test_admin_may_name_another_program_manager(admin_user, other_pm, unit):
    initiative = initiative_create(
        user=admin_user, title="Shop floor", business_unit=unit, accountable=other_pm
    )

    initiative.refresh_from_db()
    assert initiative.accountable == other_pm
    assert initiative.created_by == admin_user


def test_admin_who_is_no_program_manager_must_name_one(admin_user, unit):
    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=admin_user, title="Orphan", business_unit=unit)

    assert _domain_error(excinfo, "accountable").code == "not_program_manager"
    assert not Initiative.objects.exists()


def test_program_manager_may_not_name_another(pm, other_pm, unit):
    with pytest.raises(PermissionDenied):
        initiative_create(user=pm, title="Pass the buck", business_unit=unit, accountable=other_pm)

    assert not Initiative.objects.exists()


def test_program_manager_may_name_themself(pm, unit):
    initiative = initiative_create(user=pm, title="Mine", business_unit=unit, accountable=pm)

    assert initiative.accountable == pm


@pytest.mark.parametrize("who", ["engineer", "stakeholder", "scientist"])
def test_accountable_must_be_a_program_manager(request, admin_user, unit, who):
    candidate = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        initiative_create(
            user=admin_user, title="Wrong owner", business_unit=unit, accountable=candidate
        )

    assert _domain_error(excinfo, "accountable").code == "not_program_manager"
    assert not Initiative.objects.exists()


def test_inactive_program_manager_cannot_be_named(admin_user, make_user, unit):
    gone = make_user(Role.PROGRAM_MANAGER, username="gone", is_active=False)

    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=admin_user, title="Ghost", business_unit=unit, accountable=gone)

    _domain_error(excinfo, "accountable")
    assert not Initiative.objects.exists()


def test_inactive_program_manager_cannot_create(make_user, unit):
    gone = make_user(Role.PROGRAM_MANAGER, username="gone", is_active=False)

    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=gone, title="Ghost", business_unit=unit)

    _domain_error(excinfo, "accountable")
    assert not Initiative.objects.exists()


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_title_is_required(pm, unit, title):
    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=pm, title=title, business_unit=unit)

    assert _domain_error(excinfo, "title").code == "required"
    assert not Initiative.objects.exists()


def test_timebox_defaults_to_six_weeks(pm, unit):
    initiative = initiative_create(user=pm, title="Default timebox", business_unit=unit)

    initiative.refresh_from_db()
    assert initiative.dev_timebox_weeks == TIMEBOX_DEFAULT_WEEKS == 6


@pytest.mark.parametrize("weeks", [TIMEBOX_MIN_WEEKS, 3, TIMEBOX_MAX_WEEKS])
def test_timebox_inside_range_is_kept(pm, unit, weeks):
    initiative = initiative_create(
        user=pm, title="Timeboxed", business_unit=unit, dev_timebox_weeks=weeks
    )

    initiative.refresh_from_db()
    assert initiative.dev_timebox_weeks == weeks


@pytest.mark.parametrize("weeks", [-1, 0, 13, 52])
def test_timebox_outside_range_is_refused(pm, unit, weeks):
    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=pm, title="Too long", business_unit=unit, dev_timebox_weeks=weeks)

    _domain_error(excinfo, "dev_timebox_weeks")
    assert not Initiative.objects.exists()


@pytest.mark.parametrize(
    "extra",
    [{"budget": "1 M EUR"}, {"phase": Phase.OPS}, {"status": Status.RETIRED}, {"created_by": "x"}],
)
def test_unknown_fields_are_refused(pm, unit, extra):
    with pytest.raises(DomainError) as excinfo:
        initiative_create(user=pm, title="Sneaky", business_unit=unit, **extra)

    _domain_error(excinfo, None)
    assert next(iter(extra)) in excinfo.value.message
    assert not Initiative.objects.exists()


def test_story_fields_are_stored_stripped(pm, unit):
    story = {field: f"  {text}\n" for field, text in FULL_STORY.items()}

    initiative = initiative_create(user=pm, title="Story", business_unit=unit, **story)

    initiative.refresh_from_db()
    for field, text in FULL_STORY.items():
        assert getattr(initiative, field) == text


# initiative_update


def test_accountable_updates_title_story_and_timebox(initiative, pm, other_pm):
    initiative_update(
        initiative=initiative,
        user=pm,
        title="  Better title ",
        business_problem="  Fraud costs money.  ",
        use_case=None,
        dev_timebox_weeks=4,
    )

    initiative.refresh_from_db()
    assert initiative.title == "Better title"
    assert initiative.business_problem == "Fraud costs money."
    assert initiative.use_case == ""
    assert initiative.dev_timebox_weeks == 4


def test_update_may_move_to_another_business_unit(initiative, pm):
    risk = BusinessUnitFactory(name="Risk")

    initiative_update(initiative=initiative, user=pm, business_unit=risk)

    initiative.refresh_from_db()
    assert initiative.business_unit == risk


def test_admin_may_update(initiative, admin_user):
    initiative_update(initiative=initiative, user=admin_user, title="Admin's title")

    initiative.refresh_from_db()
    assert initiative.title == "Admin's title"


@pytest.mark.parametrize("who", ["other_pm", "engineer", "scientist", "stakeholder"])
def test_only_accountable_or_admin_update(request, ready_initiative, who):
    # ready_initiative has the scientist and the engineer on its team: being on the team is
    # not enough to edit the story.
    user = request.getfixturevalue(who)
    title = ready_initiative.title

    with pytest.raises(PermissionDenied):
        initiative_update(initiative=ready_initiative, user=user, title="Hijacked")

    ready_initiative.refresh_from_db()
    assert ready_initiative.title == title


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_accountable_is_not_an_editable_field(request, initiative, pm, other_pm, who):
    user = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        initiative_update(initiative=initiative, user=user, accountable=other_pm)

    _domain_error(excinfo, "accountable")
    initiative.refresh_from_db()
    assert initiative.accountable == pm
    assert initiative.handovers.count() == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"phase": Phase.OPS},
        {"status": Status.RETIRED},
        {"dev_started_at": None},
        {"created_by": None},
        {"colour": "red"},
    ],
)
def test_unknown_fields_are_refused_on_update(initiative, pm, changes):
    with pytest.raises(DomainError) as excinfo:
        initiative_update(initiative=initiative, user=pm, **changes)

    _domain_error(excinfo, None)
    initiative.refresh_from_db()
    assert initiative.phase == Phase.BIZ
    assert initiative.status == Status.ACTIVE
    assert initiative.created_by == pm


@pytest.mark.parametrize("title", ["", "  "])
def test_title_cannot_be_blanked(initiative, pm, title):
    with pytest.raises(DomainError) as excinfo:
        initiative_update(initiative=initiative, user=pm, title=title)

    _domain_error(excinfo, "title")
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection"


@pytest.mark.parametrize("weeks", [0, 13])
def test_timebox_range_holds_on_update(initiative, pm, weeks):
    with pytest.raises(DomainError) as excinfo:
        initiative_update(initiative=initiative, user=pm, dev_timebox_weeks=weeks)

    _domain_error(excinfo, "dev_timebox_weeks")
    initiative.refresh_from_db()
    assert initiative.dev_timebox_weeks == TIMEBOX_DEFAULT_WEEKS


@pytest.mark.parametrize("who", ["pm", "admin_user"])
def test_cancelled_initiative_refuses_edits(request, initiative, pm, who):
    decide(initiative, Decision.KILL, pm)
    assert initiative.status == Status.CANCELLED
    user = request.getfixturevalue(who)

    with pytest.raises(ConflictError) as excinfo:
        initiative_update(initiative=initiative, user=user, title="Revived")

    assert excinfo.value.code == "final_status"
    initiative.refresh_from_db()
    assert initiative.title == "Card-fraud detection"


def test_final_status_is_checked_on_the_stored_row_not_the_callers_copy(initiative, pm):
    stale = Initiative.objects.get(pk=initiative.pk)
    decide(initiative, Decision.KILL, pm)

    with pytest.raises(ConflictError):
        initiative_update(initiative=stale, user=pm, title="Revived")


def test_initiative_on_hold_may_still_be_edited(initiative, pm):
    decide(initiative, Decision.HOLD, pm)
    assert initiative.status == Status.ON_HOLD

    initiative_update(initiative=initiative, user=pm, title="Edited while on hold")

    initiative.refresh_from_db()
    assert initiative.title == "Edited while on hold"


def test_update_returns_the_changed_initiative(initiative, pm):
    updated = initiative_update(initiative=initiative, user=pm, data_feasibility=" Warehouse ")

    assert updated.pk == initiative.pk
    assert updated.data_feasibility == "Warehouse"


# The database backs the timebox range too.


@pytest.mark.parametrize("weeks", [0, TIMEBOX_MAX_WEEKS + 1])
def test_database_refuses_timebox_outside_range(initiative, weeks):
    with pytest.raises(IntegrityError), transaction.atomic():
        Initiative.objects.filter(pk=initiative.pk).update(dev_timebox_weeks=weeks)

    initiative.refresh_from_db()
    assert initiative.dev_timebox_weeks == TIMEBOX_DEFAULT_WEEKS


@pytest.mark.parametrize("weeks", [TIMEBOX_MIN_WEEKS, TIMEBOX_MAX_WEEKS])
def test_database_accepts_timebox_at_the_bounds(initiative, weeks):
    Initiative.objects.filter(pk=initiative.pk).update(dev_timebox_weeks=weeks)

    initiative.refresh_from_db()
    assert initiative.dev_timebox_weeks == weeks


# selectors.parse_key / initiative_get


@pytest.mark.parametrize(("key", "number"), [("BDO-1", 1), ("BDO-42", 42), ("bdo-7", 7)])
def test_parse_key_reads_the_number(key, number):
    assert selectors.parse_key(key) == number


MALFORMED_KEYS = [
    "",
    "BDO-",
    "BDO-0",
    "BDO-01",
    "BDO-x",
    "BDO-1x",
    "BDO--1",
    "BDO-+1",
    "BDO-1.0",
    "BDO- 1",
    " BDO-1",
    "BDO-1 ",
    "XYZ-1",
    "BDO1",
    "1",
    # Unicode digits: str.isdigit() accepts them, but they are not keys.
    "BDO-²",
    "BDO-١",
]


@pytest.mark.parametrize("key", MALFORMED_KEYS)
def test_parse_key_refuses_anything_else(key):
    assert selectors.parse_key(key) is None


def test_initiative_get_finds_by_key(initiative, pm):
    found = selectors.initiative_get(initiative.key, pm)

    assert found == initiative
    assert found.accountable_id == initiative.accountable_id


def test_initiative_get_unknown_key_is_404(initiative, pm):
    with pytest.raises(Http404):
        selectors.initiative_get(f"BDO-{initiative.pk + 1000}", pm)


def _arabic_indic(number: int) -> str:
    return "".join(chr(0x0660 + int(digit)) for digit in str(number))


# Malformed keys built around an existing initiative's number, so that a lenient parser
# would find that initiative instead of answering 404.
MALFORMED_AROUND = {
    "leading zero": lambda pk: f"BDO-0{pk}",
    "trailing letter": lambda pk: f"BDO-{pk}x",
    "plus sign": lambda pk: f"BDO-+{pk}",
    "decimal": lambda pk: f"BDO-{pk}.0",
    "inner space": lambda pk: f"BDO- {pk}",
    "leading space": lambda pk: f" BDO-{pk}",
    "trailing space": lambda pk: f"BDO-{pk} ",
    "other prefix": lambda pk: f"XYZ-{pk}",
    "no dash": lambda pk: f"BDO{pk}",
    "bare number": lambda pk: str(pk),
    "arabic-indic digits": lambda pk: f"BDO-{_arabic_indic(pk)}",
    "zero": lambda pk: "BDO-0",
    "letters": lambda pk: "BDO-x",
    "empty number": lambda pk: "BDO-",
    "superscript digit": lambda pk: "BDO-²",
    "huge number": lambda pk: "BDO-" + "9" * 30,
}


@pytest.mark.parametrize("variant", sorted(MALFORMED_AROUND))
def test_initiative_get_malformed_key_is_404(initiative, pm, variant):
    key = MALFORMED_AROUND[variant](initiative.pk)

    with pytest.raises(Http404):
        selectors.initiative_get(key, pm)
