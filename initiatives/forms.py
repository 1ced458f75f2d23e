from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.forms.models import ModelChoiceIterator
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import (
    TIMEBOX_DEFAULT_WEEKS,
    TIMEBOX_MAX_WEEKS,
    TIMEBOX_MIN_WEEKS,
    BusinessUnit,
    Initiative,
    Phase,
    TeamRole,
)
from initiatives.people import ambiguous_names, person_name

STORY_WIDGET = forms.Textarea(attrs={"rows": 4})


def people_with(*roles: Role) -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[role.value for role in roles])
        .distinct()
        .order_by("username")
    )


class UserChoiceField(forms.ModelChoiceField):
    """People named as everywhere (`person_name`); the shared names are asked once per
    rendering of the choices."""

    _ambiguous: frozenset[str] | None = None

    def label_from_instance(self, obj: Any) -> str:
        if self._ambiguous is None:
            self._ambiguous = ambiguous_names()
        return person_name(obj, self._ambiguous)


class _OfferedIterator(ModelChoiceIterator):
    """The choices a field offers (`field.offered`), which may be fewer than those it
    accepts (`field.queryset`): a refused person then gets the service's reason, not
    "Select a valid choice"."""

    def __init__(self, field: Any) -> None:
        super().__init__(field)
        if getattr(field, "offered", None) is not None:
            self.queryset = field.offered


class TeamChoiceField(UserChoiceField):
    """A person for the team; it offers only `offered` (people not on the team yet)."""

    iterator = _OfferedIterator
    offered: QuerySet[Any] | None = None


class InitiativeForm(forms.Form):
    title = forms.CharField(max_length=200)
    business_unit = forms.ModelChoiceField(queryset=BusinessUnit.objects.all())
    accountable = UserChoiceField(
        queryset=people_with(Role.PROGRAM_MANAGER),
        required=False,
        help_text="Admins may name another program manager; otherwise you are accountable.",
    )
    dev_timebox_weeks = forms.IntegerField(
        label="Dev timebox (weeks)",
        min_value=TIMEBOX_MIN_WEEKS,
        max_value=TIMEBOX_MAX_WEEKS,
        initial=TIMEBOX_DEFAULT_WEEKS,
        help_text="Dev should take 3–6 weeks; counted from entering Dev.",
    )
    business_problem = forms.CharField(required=False, widget=STORY_WIDGET)
    business_requirements = forms.CharField(required=False, widget=STORY_WIDGET)
    use_case = forms.CharField(required=False, widget=STORY_WIDGET)
    algorithm_translation = forms.CharField(
        required=False,
        widget=STORY_WIDGET,
        help_text="How the business problem becomes an algorithm.",
    )
    data_feasibility = forms.CharField(
        required=False,
        widget=STORY_WIDGET,
        help_text="Which internal data answers the business problem.",
    )

    def __init__(
        self,
        *args: Any,
        may_name_accountable: bool = False,
        units: QuerySet[BusinessUnit] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if units is not None:
            self.fields["business_unit"].queryset = units  # type: ignore[attr-defined]
        if not may_name_accountable:
            del self.fields["accountable"]

    @classmethod
    def initial_for(cls, initiative: Initiative) -> dict[str, Any]:
        return {
            name: getattr(initiative, name) for name in cls.base_fields if name != "accountable"
        }


TEAM_ROLES = (
    Role.DATA_SCIENTIST,
    Role.DATA_ENGINEER,
    Role.DEVOPS_ENGINEER,
    Role.BUSINESS_STAKEHOLDER,
)


def team_candidates(initiative: Initiative | None) -> QuerySet[Any]:
    """People who may join the team: holding a team role, not on the team yet, not the
    accountable PM; in Ops no one who could only be a data scientist (they leave in Ops)."""
    people = people_with(*TEAM_ROLES)
    if initiative is None:
        return people
    roles = list(TEAM_ROLES)
    if initiative.phase == Phase.OPS:
        roles.remove(Role.DATA_SCIENTIST)
        people = people.filter(groups__name__in=[role.value for role in roles])
    on_team = initiative.memberships.filter(left_at__isnull=True).values("user_id")
    return people.exclude(pk__in=on_team).exclude(pk=initiative.accountable_id).distinct()


class MemberForm(forms.Form):
    user = TeamChoiceField(
        queryset=people_with(*TEAM_ROLES),
        label="Person",
        # The anchor the message after creating an initiative links to (views.TEAM_FORM_ANCHOR).
        widget=forms.Select(attrs={"id": "team-person"}),
        help_text="People not on the team yet who hold a team role.",
    )
    role = forms.ChoiceField(choices=TeamRole.choices)

    def __init__(self, *args: Any, initiative: Initiative | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        field.offered = team_candidates(initiative)  # type: ignore[attr-defined]
        field.widget.choices = field.choices  # type: ignore[attr-defined]
        if initiative is not None and initiative.phase == Phase.OPS:
            self.fields["role"].choices = [  # type: ignore[attr-defined]
                (value, label)
                for value, label in TeamRole.choices
                if value != TeamRole.DATA_SCIENTIST
            ]


class HandoverForm(forms.Form):
    to = UserChoiceField(
        queryset=people_with(Role.PROGRAM_MANAGER),
        label="Hand over to",
        # The "Hand over" button links here: a fragment that names a field focuses it.
        widget=forms.Select(attrs={"id": "handover-to"}),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, initiative: Initiative, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to"].queryset = people_with(Role.PROGRAM_MANAGER).exclude(  # type: ignore[attr-defined]
            pk=initiative.accountable_id
        )


class IterationForm(forms.Form):
    tried = forms.CharField(label="What was tried", widget=forms.Textarea(attrs={"rows": 3}))
    happened_on = forms.DateField(
        label="Date", widget=forms.DateInput(attrs={"type": "date"}), initial=timezone.localdate
    )
    business_feedback = forms.CharField(
        label="What the business said",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class FeedbackForm(forms.Form):
    business_feedback = forms.CharField(
        label="What the business said", widget=forms.Textarea(attrs={"rows": 2})
    )
