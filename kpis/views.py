"""KPI pages: defining a KPI on the initiative page, the portfolio KPI overview and the
dashboards for business stakeholders (per unit and per initiative), trend charts and the CSV
export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import push_url

from bizdevops.errors import DomainError
from bizdevops.htmx import HtmxHttpRequest, partial_wanted, vary_on_htmx
from bizdevops.web import refusal_status, require_get_or_post, run_service
from initiatives.models import Phase, Status
from initiatives.pages import initiative_page
from initiatives.selectors import business_unit_get, business_units_visible_to, initiative_get
from kpis import overview, permissions, selectors, services
from kpis.forms import ChartRangeForm, KPIForm
from kpis.models import KPI


@login_required
@require_POST
def kpi_add(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = initiative_get(key, request.user)
    form = KPIForm(request.POST)
    if form.is_valid():
        kpi = run_service(
            form,
            lambda: services.kpi_define(
                initiative=initiative, user=request.user, **form.cleaned_data
            ),
        )
        if kpi is not None:
            messages.success(request, f"KPI “{kpi.name}” defined.")
            return initiative_page.after_action(request, key, part="kpis", also=("gate-panel",))
    return initiative_page.render(
        request, initiative, part="kpis", status=refusal_status(form), kpi_form=form
    )


@dataclass(frozen=True)
class ChartRange:
    """The range of the trend charts, as the URL gives it: `?range=30d`, or
    `?range=custom&from=2026-11-01&to=2026-11-30` (days in the user's time zone, both
    included); a custom range that does not validate falls back to the default with its
    errors on `form`."""

    name: str
    start: dt.datetime
    end: dt.datetime
    form: ChartRangeForm

    @property
    def query(self) -> str:
        """The query string that gives this range again (links, CSV, the pushed URL)."""
        if self.name != "custom":
            return urlencode({"range": self.name})
        return urlencode(
            {"range": "custom", "from": self.form.data["from"], "to": self.form.data["to"]}
        )

    @property
    def label(self) -> str:
        if self.name != "custom":
            return self.name
        return f"{self.form.data['from']} – {self.form.data['to']}"

    @property
    def invalid(self) -> bool:
        return self.form.is_bound and not self.form.is_valid()


def _range(request: HtmxHttpRequest) -> ChartRange:
    name = request.GET.get("range", selectors.DEFAULT_RANGE)
    end = timezone.now()
    if name == "custom":
        form = ChartRangeForm(
            {"from": request.GET.get("from", ""), "to": request.GET.get("to", "")}
        )
        if form.is_valid():
            zone = timezone.get_current_timezone()
            first, last = form.cleaned_data["from"], form.cleaned_data["to"]
            start = dt.datetime.combine(first, dt.time(), tzinfo=zone)
            stop = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=zone)
            return ChartRange("custom", start, stop, form)
        default = selectors.DEFAULT_RANGE
        return ChartRange(default, end - selectors.RANGES[default], end, form)
    if name not in selectors.RANGES:
        name = selectors.DEFAULT_RANGE
    return ChartRange(name, end - selectors.RANGES[name], end, ChartRangeForm())


def _range_status(chart_range: ChartRange) -> int:
    return 400 if chart_range.invalid else 200


@login_required
@require_safe
def dashboards(request: HtmxHttpRequest) -> HttpResponse:
    units = list(business_units_visible_to(request.user))
    if len(units) == 1:
        return redirect("unit-dashboard", unit_id=units[0].pk)
    return render(request, "kpis/dashboards.html", {"units": units})


def _overview_url(params: dict[str, str]) -> str:
    encoded = urlencode(params)
    return f"{reverse('kpi-overview')}{'?' if encoded else ''}{encoded}"


@login_required
@require_safe
@vary_on_htmx
def kpi_overview(request: HtmxHttpRequest) -> HttpResponse:
    """Every KPI the user may see with its status, latest value against target, 30-day
    sparkline and change, grouped by unit and initiative, worst first; filters in the URL."""
    filters = overview.Filters.of(request.GET)
    page = request.GET.get("page", "1")
    number = int(page) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    units = overview.units_for_filter(business_units_visible_to(request.user))
    result = overview.overview(
        selectors.kpis_visible_to(request.user), filters, number, unit_names=dict(units)
    )
    counts = [
        {
            "status": status,
            "label": overview.STATUS_LABELS[status],
            "count": result.counts[status],
            "url": _overview_url(filters.query(status="" if filters.status == status else status)),
            "current": filters.status == status,
        }
        for status in overview.STATUSES
    ]
    pages = {
        "previous": _overview_url(filters.query(page=result.page - 1)) if result.page > 1 else "",
        "next": _overview_url(filters.query(page=result.page + 1))
        if result.page < result.pages
        else "",
    }
    context = {
        "overview": result,
        "filters": filters,
        "counts": counts,
        "pages": pages,
        "units": units,
        "phases": Phase.choices,
        "statuses": [(s, overview.STATUS_LABELS[s]) for s in overview.STATUSES],
        "nav": "dashboards",
    }
    template = "kpis/overview.html"
    if partial_wanted(request):
        template += "#overview"
    return render(request, template, context)


@login_required
@require_safe
def unit_dashboard(request: HtmxHttpRequest, unit_id: int) -> HttpResponse:
    unit = business_unit_get(unit_id, request.user)
    kpis = selectors.kpis_visible_to(request.user).filter(initiative__business_unit=unit)
    groups: dict[int, list[selectors.Tile]] = {}
    for tile in selectors.tiles(kpis.exclude(initiative__status=Status.CANCELLED)):
        groups.setdefault(tile.kpi.initiative_id, []).append(tile)
    initiatives = [(tiles[0].kpi.initiative, tiles) for tiles in groups.values()]
    context = {
        "unit": unit,
        "initiatives": initiatives,
        "units": business_units_visible_to(request.user),
    }
    return render(request, "kpis/unit_dashboard.html", context)


def _range_context(chart_range: ChartRange) -> dict[str, Any]:
    return {
        "range": chart_range.name,
        "ranges": list(selectors.RANGES),
        "range_query": chart_range.query,
        "range_label": chart_range.label,
        "range_form": chart_range.form,
    }


@login_required
@require_safe
def initiative_kpis(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = initiative_get(key, request.user)
    chart_range = _range(request)
    start, end = chart_range.start, chart_range.end
    tiles = selectors.tiles(initiative.kpis.all())
    data = selectors.series_many([tile.kpi for tile in tiles], start, end)
    charts = [(tile, _chart(tile.kpi, start, end, data[tile.kpi.pk])) for tile in tiles]
    context = {"initiative": initiative, "charts": charts, **_range_context(chart_range)}
    return render(request, "kpis/initiative_kpis.html", context, status=_range_status(chart_range))


def caption(data: selectors.Series) -> str:
    """What each point of a chart is, in plain words: "every value", "hourly averages",
    "averages of 5 hours", "averages of about 20 minutes"."""
    if data.points and all(point[4] <= 1 for point in data.points):
        return "every value"
    seconds = data.bucket_seconds
    for size, single, plural in ((86_400, "daily", "days"), (3_600, "hourly", "hours")):
        if seconds % size == 0:
            count = seconds // size
            return f"{single} averages" if count == 1 else f"averages of {count} {plural}"
    if seconds < 120:
        return f"averages of {seconds} seconds"
    about = "" if seconds % 60 == 0 else "about "
    return f"averages of {about}{round(seconds / 60)} minutes"


def _chart(
    kpi: KPI, start: dt.datetime, end: dt.datetime, data: selectors.Series | None = None
) -> dict[str, Any]:
    data = data or selectors.series(kpi, start, end)
    return {
        "id": f"chart-data-{kpi.pk}",
        "kpi": kpi.name,
        "unit": kpi.unit,
        "decimals": kpi.shown_decimals,
        "tz": timezone.get_current_timezone_name(),
        "caption": caption(data),
        "start": int(start.timestamp()),
        "end": int(end.timestamp()),
        "bucket_seconds": data.bucket_seconds,
        "points": data.points,
        "target": kpi.target,
        "warning": kpi.warning_threshold,
        "critical": kpi.critical_threshold,
    }


@login_required
@require_safe
def kpi_chart(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    kpi = selectors.kpi_get(kpi_id, request.user)
    chart_range = _range(request)
    context = {
        "kpi": kpi,
        "chart": _chart(kpi, chart_range.start, chart_range.end),
        **_range_context(chart_range),
    }
    response = render(request, "kpis/_chart.html", context, status=_range_status(chart_range))
    if request.htmx and not chart_range.invalid:
        # The range lives in the page's URL (reload and bookmarks keep it), not this one's.
        page = reverse("initiative-kpis", kwargs={"key": kpi.initiative.key})
        response = push_url(response, f"{page}?{chart_range.query}")
    return response


CSV_CHUNK_ROWS = 5000


@login_required
@require_safe
def kpi_csv(request: HtmxHttpRequest, kpi_id: int) -> StreamingHttpResponse:
    """The raw measurements of a KPI in the chosen range, streamed: the rows are read in
    chunks from a server-side cursor and written as they come, never all in memory."""
    kpi = selectors.kpi_get(kpi_id, request.user)
    chart_range = _range(request)
    rows = (
        selectors.measurements_of(kpi, chart_range.start, chart_range.end)
        .order_by("as_of")
        .values_list("as_of", "value", "origin")
        .iterator(chunk_size=CSV_CHUNK_ROWS)
    )

    def lines() -> Iterator[str]:
        # One string per chunk of rows, not per row: Django encodes and writes each piece a
        # streaming response yields, which was half the time of a 1M-row export per row.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["as_of", "value", "origin"])
        yield buffer.getvalue()  # the response starts before the first rows are read
        buffer.seek(0)
        buffer.truncate()
        for count, (as_of, value, origin) in enumerate(rows, start=1):
            writer.writerow([as_of.isoformat(), repr(value), origin])
            if count % CSV_CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()

    label = chart_range.label.replace(" – ", "-to-")
    filename = f"{kpi.initiative.key}-{slugify(kpi.name)}-{label}.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _kpi_offered(request: HtmxHttpRequest, kpi: KPI) -> None:
    """The edit and remove pages of a KPI: for those who may define KPIs of its initiative
    (403 for others), and not on a closed initiative."""
    permissions.can_change_kpi.check(request.user, kpi.initiative)
    if kpi.initiative.is_final:
        raise PermissionDenied(
            f"{kpi.initiative.key} is {kpi.initiative.get_status_display().lower()}; its KPIs "
            "can no longer be changed."
        )


def _kpis_of(kpi: KPI) -> str:
    return f"{reverse('initiative-detail', kwargs={'key': kpi.initiative.key})}#kpis"


@login_required
@require_get_or_post
def kpi_edit(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    """Edit a KPI's definition (through `services.kpi_update`, as the API's PATCH)."""
    kpi = selectors.kpi_get(kpi_id, request.user)
    _kpi_offered(request, kpi)
    initial = {field: getattr(kpi, field) for field in services.KPI_FIELDS}
    form = KPIForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if not changes:
            return redirect(_kpis_of(kpi))
        if run_service(form, lambda: services.kpi_update(kpi=kpi, user=request.user, **changes)):
            messages.success(request, f"KPI “{form.cleaned_data['name']}” saved.")
            return redirect(_kpis_of(kpi))
    status = refusal_status(form) if request.method == "POST" else 200
    context = {"form": form, "kpi": kpi, "initiative": kpi.initiative}
    return render(request, "kpis/kpi_form.html", context, status=status)


@login_required
@require_get_or_post
def kpi_remove(request: HtmxHttpRequest, kpi_id: int) -> HttpResponse:
    """Remove a KPI while its initiative is in Biz: a confirmation page, then the POST."""
    kpi = selectors.kpi_get(kpi_id, request.user)
    _kpi_offered(request, kpi)
    refusal, status = "", 200
    if kpi.initiative.phase != Phase.BIZ:
        refusal = (
            f"KPIs are removed only in Biz; {kpi.initiative.key} is in "
            f"{kpi.initiative.get_phase_display()}. Edit the KPI instead, or recycle to Biz."
        )
    if request.method == "POST":
        try:
            services.kpi_remove(kpi=kpi, user=request.user)
        except DomainError as error:
            refusal, status = error.message, error.status_code
        else:
            messages.success(request, f"KPI “{kpi.name}” removed.")
            return redirect(_kpis_of(kpi))
    context = {"kpi": kpi, "initiative": kpi.initiative, "refusal": refusal}
    return render(request, "kpis/kpi_confirm_remove.html", context, status=status)
