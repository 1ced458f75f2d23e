"""KPI pages: defining a KPI on the initiative page, the dashboards for business
stakeholders (per unit and per initiative), trend charts and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe

from bizdevops.htmx import HtmxHttpRequest
from bizdevops.web import refusal_status, run_service
from initiatives.models import Status
from initiatives.pages import initiative_page
from initiatives.selectors import business_unit_get, business_units_visible_to, initiative_get
from kpis import selectors, services
from kpis.forms import KPIForm
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


def _range(request: HtmxHttpRequest) -> tuple[str, dt.datetime, dt.datetime]:
    name = request.GET.get("range", selectors.DEFAULT_RANGE)
    if name not in selectors.RANGES:
        name = selectors.DEFAULT_RANGE
    end = timezone.now()
    return name, end - selectors.RANGES[name], end


@login_required
@require_safe
def dashboards(request: HtmxHttpRequest) -> HttpResponse:
    units = list(business_units_visible_to(request.user))
    if len(units) == 1:
        return redirect("unit-dashboard", unit_id=units[0].pk)
    return render(request, "kpis/dashboards.html", {"units": units})


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


@login_required
@require_safe
def initiative_kpis(request: HtmxHttpRequest, key: str) -> HttpResponse:
    initiative = initiative_get(key, request.user)
    range_name, start, end = _range(request)
    tiles = selectors.tiles(initiative.kpis.all())
    data = selectors.series_many([tile.kpi for tile in tiles], start, end)
    charts = [(tile, _chart(tile.kpi, start, end, data[tile.kpi.pk])) for tile in tiles]
    context = {
        "initiative": initiative,
        "charts": charts,
        "range": range_name,
        "ranges": list(selectors.RANGES),
    }
    return render(request, "kpis/initiative_kpis.html", context)


def _chart(
    kpi: KPI, start: dt.datetime, end: dt.datetime, data: selectors.Series | None = None
) -> dict[str, Any]:
    data = data or selectors.series(kpi, start, end)
    return {
        "id": f"chart-data-{kpi.pk}",
        "kpi": kpi.name,
        "unit": kpi.unit,
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
    range_name, start, end = _range(request)
    context = {
        "kpi": kpi,
        "chart": _chart(kpi, start, end),
        "range": range_name,
        "ranges": list(selectors.RANGES),
    }
    return render(request, "kpis/_chart.html", context)


CSV_CHUNK_ROWS = 5000


@login_required
@require_safe
def kpi_csv(request: HtmxHttpRequest, kpi_id: int) -> StreamingHttpResponse:
    """The raw measurements of a KPI in the chosen range, streamed: the rows are read in
    chunks from a server-side cursor and written as they come, never all in memory."""
    kpi = selectors.kpi_get(kpi_id, request.user)
    range_name, start, end = _range(request)
    rows = (
        selectors.measurements_of(kpi, start, end)
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

    filename = f"{kpi.initiative.key}-{slugify(kpi.name)}-{range_name}.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
