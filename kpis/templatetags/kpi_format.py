"""How KPI values, times and sparklines are shown: one place, used by every KPI template
(tiles, the overview, the charts' data). The CSV export keeps every digit."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from django import template
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from kpis.models import KPI

register = template.Library()


def format_value(value: float | None, decimals: int) -> str:
    """The value rounded to `decimals` digits with thousands separators ("72.7" for 72.7273
    at one), never "-0.0"; "–" for no value or one that is not a finite number."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:,.{decimals}f}"
    if text.lstrip("-").strip("0.,") == "":
        text = text.lstrip("-")  # -0.0 is shown as 0.0
    return text


@register.filter
def kpi_value(value: float | None, kpi: KPI) -> str:
    """`{{ value|kpi_value:kpi }}`: to the KPI's precision (its `decimals`, else its unit's)."""
    return format_value(value, kpi.shown_decimals)


@register.filter
def kpi_change(value: float | None, kpi: KPI) -> str:
    """A difference with its sign: "+1.5", "-0.3", "±0.0"."""
    if value is None or not math.isfinite(value):
        return "–"
    text = format_value(abs(value), kpi.shown_decimals)
    if text.strip("0.,") == "":
        return f"±{text}"
    return f"{'+' if value > 0 else '-'}{text}"


@register.filter
def when(moment: dt.datetime | None) -> str:
    """A moment in the current (the user's) time zone, with the zone: "2026-12-06 14:00 CET"."""
    if moment is None:
        return ""
    return date_format(localtime(moment), "Y-m-d H:i T")


SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 120, 28, 2


@register.simple_tag
def sparkline(points: Sequence[tuple[int, float]], label: str = "") -> SafeString:
    """An inline SVG line of (x, y) points, scaled to its box; no script needed."""
    finite = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    if len(finite) < 2:
        return format_html(
            '<svg class="sparkline" width="{}" height="{}" role="img" aria-label="{}"></svg>',
            SPARK_WIDTH,
            SPARK_HEIGHT,
            label or "not enough values for a trend",
        )
    xs, ys = [x for x, _ in finite], [y for _, y in finite]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    width, height = SPARK_WIDTH - 2 * SPARK_PAD, SPARK_HEIGHT - 2 * SPARK_PAD

    def scale(x: float, y: float) -> str:
        px = SPARK_PAD + (x - x0) / ((x1 - x0) or 1) * width
        py = SPARK_PAD + (1 - ((y - y0) / (y1 - y0) if y1 > y0 else 0.5)) * height
        return f"{px:.1f},{py:.1f}"

    line = " ".join(scale(x, y) for x, y in finite)
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}"><polyline points="{}" fill="none" stroke="currentColor" '
        'stroke-width="1.5" stroke-linejoin="round"/></svg>',
        SPARK_WIDTH,
        SPARK_HEIGHT,
        SPARK_WIDTH,
        SPARK_HEIGHT,
        label,
        line,
    )
