"""Small presentation helpers for templates."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import TYPE_CHECKING

from django import template
from django.conf import settings
from django.forms import BoundField
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from initiatives.models import KEY_PREFIX, Initiative
from initiatives.people import ambiguous_names, person_name

if TYPE_CHECKING:
    from initiatives.selectors import Card

register = template.Library()


@register.simple_tag
def icon(name: str, label: str = "") -> SafeString:
    """A Lucide icon from the vendored sprite; decorative unless a label is given."""
    if label:
        return format_html(
            '<svg class="icon" role="img" aria-label="{}"><use href="{}#{}"></use></svg>',
            label,
            _sprite(settings.STATIC_URL),
            name,
        )
    return format_html(
        '<svg class="icon" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>',
        _sprite(settings.STATIC_URL),
        name,
    )


@cache
def _sprite(static_url: str) -> str:
    # Looked up once (per STATIC_URL, for tests that change it): a board page draws hundreds.
    return static("vendor/lucide/icons.svg")


def timebox_context(
    initiative: Initiative | Card, due_texts: dict[dt.date, str] | None = None
) -> dict[str, object]:
    """What the Dev timebox shows (the `timebox` partial of _columns.html): days left or
    overdue, the weeks and the due date as text. `due_texts` keeps the texts of the dates
    written so far, for a list of many cards (formatting a date costs more than the rest)."""
    left = initiative.dev_days_left
    due = initiative.dev_due_at
    text = ""
    if due is not None:
        # As `{{ due|date:'j M Y' }}` shows it: in the current time zone.
        local = localtime(due)
        known = due_texts.get(local.date()) if due_texts is not None else None
        text = known if known is not None else date_format(local, "j M Y")
        if due_texts is not None:
            due_texts[local.date()] = text
    return {
        "left": left,
        "late": -left if left is not None and left < 0 else 0,
        "weeks": initiative.dev_timebox_weeks,
        "due": text,
    }


@register.inclusion_tag("initiatives/_columns.html#timebox")
def timebox(initiative: Initiative) -> dict[str, object]:
    return {"timebox": timebox_context(initiative), "clock": icon("clock")}


_KEY = f"{KEY_PREFIX}0"  # a key no initiative has: it marks where the real one goes


@cache
def _around_key(name: str, prefix: str, urlconf: str | None) -> tuple[str, str]:
    head, _, tail = reverse(name, kwargs={"key": _KEY}, urlconf=urlconf).rpartition(_KEY)
    return head, tail


def around_key(name: str) -> tuple[str, str]:
    """The URL `name` of an initiative as what comes before and after its key, resolved once
    per name (and script prefix) rather than once per card: reversing was the board's
    largest cost. Keys need no quoting: the prefix and digits."""
    return _around_key(name, get_script_prefix(), get_urlconf())


@register.filter
def key_url(initiative: Initiative, name: str) -> str:
    """`{% url name initiative.key %}` for the URLs that take only an initiative's key."""
    head, tail = around_key(name)
    return f"{head}{initiative.key}{tail}"


def _ambiguous(context: template.Context) -> frozenset[str]:
    """The shared full names, asked once per request (or per render without a request)."""
    holder: object = context.get("request")
    if holder is None:
        render_context = context.render_context
        cached = render_context.get("_ambiguous_names")
        if cached is None:
            cached = render_context["_ambiguous_names"] = ambiguous_names()
        return frozenset(cached)
    names: frozenset[str] | None = getattr(holder, "_ambiguous_names", None)
    if names is None:
        names = ambiguous_names()
        holder._ambiguous_names = names  # type: ignore[attr-defined]
    return names


@register.simple_tag(takes_context=True)
def person(context: template.Context, user: object) -> str:
    """A person's name as everywhere (`initiatives.people.person_name`): "Ada Lovelace",
    "Ada Lovelace (ada)" when the full name is shared, "ada" without a name."""
    if user is None or not getattr(user, "pk", None):
        return ""
    return person_name(user, _ambiguous(context))


@register.filter
def select(bound: BoundField) -> dict[str, object]:
    """What Django's Select widget writes for a field of a form (its name, its attributes in
    order and its options as (value, label, selected)), worked out as the widget does, for a
    template that writes the `<select>` itself: the widget renders a template per option
    (2.7 ms of the board's three selects)."""
    widget = bound.field.widget
    attrs = bound.build_widget_attrs({}, widget)
    if bound.auto_id and "id" not in widget.attrs:
        attrs.setdefault("id", bound.auto_id)
    attrs = widget.build_attrs(widget.attrs, attrs)
    if getattr(widget, "allow_multiple_selected", False):
        attrs["multiple"] = True
    chosen = set(widget.format_value(bound.value()))
    options = []
    for value, label in bound.field.choices:  # type: ignore[attr-defined]
        text = str(value)
        selected = text in chosen
        if selected and not getattr(widget, "allow_multiple_selected", False):
            chosen = set()  # a single select marks only the first match, as the widget does
        options.append((text, label, selected))
    return {"name": bound.html_name, "attrs": list(attrs.items()), "options": options}
