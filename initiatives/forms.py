from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from bizdevops.roles import Role
from initiatives.models import (
    TIMEBOX_DEFAULT_WEEKS,
    TIMEBOX_MAX_WEEKS,
    TIMEBOX_MIN_WEEKS,
    BusinessUnit,
    Initiative,
    TeamRole,
)

STORY_WIDGET = forms.Textarea(attrs={"rows": 4})


def people_with(*roles: Role) -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[role.value for role in roles])
        .distinct()
        .order_by("username")
    )


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


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


class MemberForm(forms.Form):
    user = UserChoiceField(
        queryset=people_with(
            Role.DATA_SCIENTIST, Role.DATA_ENGINEER, Role.DEVOPS_ENGINEER, Role.BUSINESS_STAKEHOLDER
        ),
        label="Person",
    )
    role = forms.ChoiceField(choices=TeamRole.choices)


class HandoverForm(forms.Form):
    to = UserChoiceField(queryset=people_with(Role.PROGRAM_MANAGER), label="Hand over to")
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
