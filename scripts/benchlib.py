"""Shared pieces of `make bench` (scripts/bench.py, scripts/bench_celery.py).

A `Row` is one line of the table in docs/benchmarks.md: our figure, the raw baseline measured in
the same run, their ratio and the goal. `interleaved` alternates ours and the baseline so that a
busy machine slows both alike; `time_row` / `rate_row` turn its timings into a `Row`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

console = Console(stderr=True)


@dataclass
class Row:
    """One benchmark figure against its baseline.

    `ratio` is always ours / baseline. For times lower is better (goal "<= 4x"), for rates
    (rows/s, runs/s) higher is better (goal ">= 0.5x"); `goal` says which in words.
    `met` is None when the row has no goal (an informative figure) or could not be measured.
    `value` / `baseline` are in `unit` (ms for times); `p95` is ours, in the same unit.
    """

    name: str
    value: float
    unit: str
    baseline: float
    baseline_label: str
    ratio: float
    goal: str
    met: bool | None
    queries: int | None
    p95: float | None
    note: str = ""
    baseline_p95: float | None = None


@dataclass(frozen=True)
class Scale:
    name: str
    units: int
    initiatives: int
    kpis: int
    jobs: int
    measurements: int
    big_kpi_measurements: int
    push_values: int
    push_batch: int
    repeats: int
    dispatch_due: tuple[int, ...]


SCALES = {
    "full": Scale(
        name="full",
        units=20,
        initiatives=10_000,
        kpis=20_000,
        jobs=10_000,
        measurements=10_000_000,
        big_kpi_measurements=1_000_000,
        push_values=100_000,
        push_batch=10_000,
        repeats=7,
        dispatch_due=(1_000, 10_000),
    ),
    "small": Scale(
        name="small",
        units=20,
        initiatives=500,
        kpis=1_000,
        jobs=500,
        measurements=500_000,
        big_kpi_measurements=100_000,
        push_values=20_000,
        push_batch=5_000,
        repeats=5,
        dispatch_due=(200, 500),
    ),
}


def scale_get(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise SystemExit(f"SCALE must be one of {', '.join(SCALES)}, not {name!r}") from None


@dataclass
class Timing:
    """Seconds of each run, ours and the baseline's, plus the SQL queries of our last run."""

    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    queries: int | None = None

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ours_p95(self) -> float:
        return p95(self.ours)

    @property
    def baseline_p95(self) -> float:
        return p95(self.baseline)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile: with fewer than 20 runs it is the slowest run."""
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return ordered[rank - 1]


def interleaved(
    ours: Callable[[], object],
    baseline: Callable[[], object],
    *,
    runs: int,
    warmup: int = 1,
    count_queries: bool = True,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Run ours and the baseline alternately `runs` times (after `warmup` untimed rounds).

    Alternation (ours first on even rounds, the baseline first on odd ones) spreads the noise of
    a shared machine over both sides. `setup`, when given, runs untimed before every call (e.g.
    to empty a table the call fills). Query counts go through Django's default connection.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timing = Timing()

    def one(func: Callable[[], object], into: list[float] | None, capture: bool) -> None:
        if setup is not None:
            setup()
        if capture:
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                func()
                elapsed = time.perf_counter() - start
            timing.queries = len(captured)
        else:
            start = time.perf_counter()
            func()
            elapsed = time.perf_counter() - start
        if into is not None:
            into.append(elapsed)

    for _ in range(warmup):
        one(ours, None, False)
        one(baseline, None, False)
    for n in range(runs):
        pair = [(ours, timing.ours, count_queries), (baseline, timing.baseline, False)]
        for func, into, capture in pair if n % 2 == 0 else reversed(pair):
            one(func, into, capture)
    return timing


def time_row(
    name: str,
    timing: Timing,
    *,
    baseline_label: str,
    factor: float,
    note: str = "",
    extra_goal: str = "",
    extra_met: bool | None = None,
) -> Row:
    """A row for a duration: ours / baseline must stay <= factor (lower is better)."""
    ours, base = timing.ours_median * 1000, timing.baseline_median * 1000
    ratio = ours / base if base else float("inf")
    met: bool | None = ratio <= factor
    goal = f"<= {factor:g}x (time, lower is better)"
    if extra_goal:
        goal += f"; {extra_goal}"
        met = bool(met and extra_met) if extra_met is not None else met
    return Row(
        name=name,
        value=ours,
        unit="ms",
        baseline=base,
        baseline_label=baseline_label,
        ratio=ratio,
        goal=goal,
        met=met,
        queries=timing.queries,
        p95=timing.ours_p95 * 1000,
        note=note,
        baseline_p95=timing.baseline_p95 * 1000,
    )


def rate_row(
    name: str,
    timing: Timing,
    *,
    items: int,
    unit: str,
    baseline_label: str,
    factor: float,
    note: str = "",
) -> Row:
    """A row for a throughput of `items` per run: ours / baseline must stay >= factor.

    The median rate is items / median time; the "p95" of a rate is the rate of the slowest
    (95th percentile) run, i.e. the rate one can count on.
    """
    ours = items / timing.ours_median
    base = items / timing.baseline_median
    ratio = ours / base if base else 0.0
    return Row(
        name=name,
        value=ours,
        unit=unit,
        baseline=base,
        baseline_label=baseline_label,
        ratio=ratio,
        goal=f">= {factor:g}x (rate, higher is better)",
        met=ratio >= factor,
        queries=timing.queries,
        p95=items / timing.ours_p95,
        note=note,
        baseline_p95=items / timing.baseline_p95,
    )


def error_row(name: str, error: BaseException | str, *, goal: str = "") -> Row:
    """A row recording that a benchmark could not run, so the other rows still get written."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Row(
        name=name,
        value=float("nan"),
        unit="",
        baseline=float("nan"),
        baseline_label="",
        ratio=float("nan"),
        goal=goal,
        met=None,
        queries=None,
        p95=None,
        note=f"not measured: {text}"[:500],
    )


@contextmanager
def progress() -> Iterator[Progress]:
    """A rich progress display on stderr: `with progress() as bar: task = bar.add_task(...)`."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        yield bar


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process on Linux, in MiB; None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (a Celery worker's pool children), Linux only."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(child) for child in children)
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_description(postgres_version: str = "") -> dict[str, str]:
    """Machine and versions for the report header (values are short strings)."""
    import celery
    import django

    described = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{os.cpu_count()} cores, {_cpu_model()}",
        "RAM": _memory_gib(),
        "load average at start": _load(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "Celery": celery.__version__,
    }
    if postgres_version:
        described["PostgreSQL"] = postgres_version
    return described


def format_number(value: float, unit: str) -> str:
    if value != value:  # NaN: not measured
        return "–"
    if unit == "ms":
        if value >= 1000:
            return f"{value / 1000:.2f} s"
        if value >= 100:
            return f"{value:.0f} ms"
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "MiB" or unit == "KB":
        return f"{value:,.0f} {unit}"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"
