"""Small presentation helpers for templates."""

from __future__ import annotations

from functools import cache

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from initiatives.models import KEY_PREFIX, Initiative

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


def timebox_context(initiative: Initiative) -> dict[str, object]:
    """What the Dev timebox shows (the `timebox` partial of _columns.html): days left or
    overdue, the weeks and the due date as text."""
    left = initiative.dev_days_left
    due = initiative.dev_due_at
    return {
        "left": left,
        "late": -left if left is not None and left < 0 else 0,
        "weeks": initiative.dev_timebox_weeks,
        # As `{{ due|date:'j M Y' }}` shows it: in the current time zone.
        "due": date_format(localtime(due), "j M Y") if due is not None else "",
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
