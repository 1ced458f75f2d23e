from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from bizdevops.errors import DomainError
from bizdevops.roles import Role
from initiatives.models import BusinessUnit
from initiatives.services import business_unit_save

pytestmark = pytest.mark.django_db


def test_admin_creates_a_business_unit(admin_user, stakeholder):
    unit = business_unit_save(
        user=admin_user,
        name="  Marketing  ",
        description="Campaigns and churn",
        stakeholders=[stakeholder],
    )

    unit.refresh_from_db()
    assert unit.name == "Marketing"
    assert unit.description == "Campaigns and churn"
    assert list(unit.stakeholders.all()) == [stakeholder]


def test_admin_creates_a_unit_without_stakeholders(admin_user):
    unit = business_unit_save(user=admin_user, name="Risk")

    assert BusinessUnit.objects.get(pk=unit.pk).stakeholders.count() == 0


@pytest.mark.parametrize("who", ["pm", "stakeholder", "engineer", "scientist", "devops"])
def test_only_admins_manage_business_units(request, who):
    user = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        business_unit_save(user=user, name="Shop floor")

    assert not BusinessUnit.objects.filter(name="Shop floor").exists()


def test_only_admins_update_business_units(unit, pm):
    with pytest.raises(PermissionDenied):
        business_unit_save(user=pm, name="Renamed", unit=unit)

    unit.refresh_from_db()
    assert unit.name == "Fraud"


@pytest.mark.parametrize("name", ["Fraud", "fraud", "FRAUD", "  fRaUd  "])
def test_duplicate_names_are_refused_case_insensitively(unit, admin_user, name):
    with pytest.raises(DomainError) as excinfo:
        business_unit_save(user=admin_user, name=name)

    assert excinfo.value.field == "name"
    assert BusinessUnit.objects.filter(name__iexact="fraud").count() == 1


@pytest.mark.parametrize("name", ["", "   "])
def test_name_is_required(admin_user, name):
    with pytest.raises(DomainError) as excinfo:
        business_unit_save(user=admin_user, name=name)

    assert excinfo.value.field == "name"
    assert excinfo.value.code == "required"
    assert not BusinessUnit.objects.exists()


def test_update_keeps_its_own_name(unit, admin_user, stakeholder):
    saved = business_unit_save(
        user=admin_user, name="FRAUD", description="Card and payment fraud", unit=unit
    )

    assert saved.pk == unit.pk
    unit.refresh_from_db()
    assert unit.name == "FRAUD"
    assert unit.description == "Card and payment fraud"
    assert BusinessUnit.objects.count() == 1


def test_update_cannot_take_another_units_name(unit, admin_user):
    risk = business_unit_save(user=admin_user, name="Risk")

    with pytest.raises(DomainError) as excinfo:
        business_unit_save(user=admin_user, name="fraud", unit=risk)

    assert excinfo.value.field == "name"
    risk.refresh_from_db()
    assert risk.name == "Risk"


@pytest.mark.parametrize("who", ["pm", "engineer", "scientist", "admin_user"])
def test_stakeholders_must_hold_the_role(request, admin_user, stakeholder, who):
    person = request.getfixturevalue(who)

    with pytest.raises(DomainError) as excinfo:
        business_unit_save(user=admin_user, name="Marketing", stakeholders=[stakeholder, person])

    assert excinfo.value.field == "stakeholders"
    assert not BusinessUnit.objects.filter(name="Marketing").exists()


def test_update_with_a_wrong_stakeholder_keeps_the_old_ones(unit, admin_user, stakeholder, pm):
    with pytest.raises(DomainError):
        business_unit_save(user=admin_user, name="Fraud", unit=unit, stakeholders=[pm])

    assert list(unit.stakeholders.all()) == [stakeholder]


def test_update_replaces_stakeholders(unit, admin_user, stakeholder, make_user):
    newcomer = make_user(Role.BUSINESS_STAKEHOLDER, username="newcomer")

    business_unit_save(user=admin_user, name="Fraud", unit=unit, stakeholders=[newcomer])

    assert list(unit.stakeholders.all()) == [newcomer]


def test_update_without_stakeholders_keeps_them(unit, admin_user, stakeholder):
    business_unit_save(user=admin_user, name="Fraud", description="New text", unit=unit)

    assert list(unit.stakeholders.all()) == [stakeholder]


def test_update_with_empty_stakeholders_clears_them(unit, admin_user):
    business_unit_save(user=admin_user, name="Fraud", unit=unit, stakeholders=[])

    assert not unit.stakeholders.exists()
