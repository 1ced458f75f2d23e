"""Small presentation helpers for templates."""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from initiatives.models import Initiative

register = template.Library()


@register.simple_tag
def icon(name: str, label: str = "") -> SafeString:
    """A Lucide icon from the vendored sprite; decorative unless a label is given."""
    if label:
        return format_html(
            '<svg class="icon" role="img" aria-label="{}"><use href="{}#{}"></use></svg>',
            label,
            static("vendor/lucide/icons.svg"),
            name,
        )
    return format_html(
        '<svg class="icon" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>',
        static("vendor/lucide/icons.svg"),
        name,
    )


@register.inclusion_tag("initiatives/_timebox.html")
def timebox(initiative: Initiative) -> dict[str, object]:
    left = initiative.dev_days_left
    return {
        "left": left,
        "late": -left if left is not None and left < 0 else 0,
        "weeks": initiative.dev_timebox_weeks,
        "due": initiative.dev_due_at,
    }
