"""Chart geometry for the training curves, as pure functions: numbers in, coordinates out.

No chart library and no script: the `line-chart` partial of `templates/jobs/training.html` (also
included by `templates/jobs/job_compare.html`) draws what `line_chart` computes as inline SVG
(strict CSP, readable without JavaScript, updated by the live poll like any markup).
Everything here is deterministic and free of Django, so it is tested on its own
(tests/test_charts.py). What upstream sends is not trusted to be a number: whatever
`jobs.finetuning.finite_number` does not read as one (None, NaN, infinities, booleans, strings
such as the "NaN" storable_json keeps) is skipped as missing, lines break at such gaps, a lone
point is drawn as a marker, and a series with no point at all is reported as missing instead
of drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.finetuning import finite_number

Point = tuple[float, float]


def format_number(value: Any, digits: int = 4) -> str:
    """A metric as people read it: 4 significant digits, "—" when it is missing."""
    number = finite_number(value)
    if number is None:
        return "—"
    text = f"{number:.{digits}g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def nice_step(span: float, count: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten close to `span / count`."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power * 1.0000001:
            return factor * power
    return 10 * power


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1-2-5 steps) covering [low, high]; the ends are widened to ticks."""
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = nice_step(high - low, count)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = []
    n = int(round((last - first) / step))
    for i in range(n + 1):
        # Rounded to the step's precision, so 0.1 + 0.2 shows as 0.3.
        ticks.append(round(first + i * step, max(0, -math.floor(math.log10(step)) + 1)))
    return ticks


def format_tick(value: float, ticks: Sequence[float]) -> str:
    """A tick label with as many decimals as the step between ticks needs, and no more."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if abs(value) >= 1e6 or (value and abs(value) < 1e-4):
        return f"{value:.2g}"
    return f"{value:.{decimals}f}"


def linear_scale(domain: tuple[float, float], span: tuple[float, float]) -> Callable[[float], float]:
    """Map `domain` linearly onto `span` (which may run backwards, as SVG's y axis does)."""
    d0, d1 = domain
    r0, r1 = span
    if d1 == d0:
        return lambda value: (r0 + r1) / 2
    ratio = (r1 - r0) / (d1 - d0)
    return lambda value: r0 + (value - d0) * ratio


def segments(points: Iterable[tuple[Any, Any]]) -> list[list[Point]]:
    """The runs of consecutive points with finite x and y; a missing one breaks the line."""
    runs: list[list[Point]] = [[]]
    for x, y in points:
        fx, fy = finite_number(x), finite_number(y)
        if fx is None or fy is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((fx, fy))
    return [run for run in runs if run]


def path_data(run: Sequence[Point], sx: Callable[[float], float], sy: Callable[[float], float]) -> str:
    """SVG path data ("M x y L x y …") through the points of one run."""
    return " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f} {sy(y):.1f}" for i, (x, y) in enumerate(run))


@dataclass(frozen=True)
class SeriesSpec:
    key: str  # the metric's name in the data
    label: str  # as the legend says it
    style: str  # CSS class suffix: colour and dash pattern (solid, dashed, dotted)


@dataclass
class Marker:
    cx: float
    cy: float
    text: str  # the exact value, shown on hover (<title>)


@dataclass
class DrawnSeries:
    spec: SeriesSpec
    paths: list[str]
    markers: list[Marker]
    lone: bool  # only single points: markers stand in for the line


@dataclass
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class MarkSpec:
    """Something to point at on a chart, at step `x`: the best checkpoint ("best", drawn on
    `key`'s value there) or an alert ("alert", a rule across the plot at that step)."""

    kind: str  # "best" or "alert": the marker's shape and CSS class
    x: Any
    text: str  # its text alternative: "Best: epoch 3, valid loss 0.81"
    key: str = ""  # the series a "best" mark sits on


@dataclass
class Mark:
    kind: str
    cx: float
    cy: float  # the point's y for "best"; the plot's top for "alert"
    text: str
    bottom: float = 0.0  # where an alert's rule ends

    @property
    def shape(self) -> str:
        """Path data: a diamond around the best point, a downward triangle atop an alert's rule."""
        x, y = self.cx, self.cy
        if self.kind == "best":
            return f"M{x:.1f} {y - 8:.1f} L{x + 8:.1f} {y:.1f} L{x:.1f} {y + 8:.1f} L{x - 8:.1f} {y:.1f} Z"
        return f"M{x - 6:.1f} {y - 10:.1f} L{x + 6:.1f} {y - 10:.1f} L{x:.1f} {y:.1f} Z"


@dataclass
class Chart:
    title: str
    width: int
    height: int
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    series: list[DrawnSeries] = field(default_factory=list)
    missing: list[SeriesSpec] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_label: str = "Step"
    marks: list[Mark] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.series

    @property
    def point_count(self) -> int:
        return sum(len(drawn.markers) for drawn in self.series)


MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 12, 40


def line_chart(
    title: str,
    specs: Sequence[SeriesSpec],
    rows: Sequence[dict[str, Any]],
    *,
    x_key: str = "step",
    width: int = 640,
    height: int = 260,
    marks: Sequence[MarkSpec] = (),
) -> Chart:
    """A chart of each spec's metric against `x_key` over `rows` (sorted by x here), with
    `marks` placed where their step is (those off the chart, or on a missing value, left out)."""
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    chart = Chart(title=title, width=width, height=height, plot=(left, top, right, bottom))
    ordered = sorted(
        (row for row in rows if finite_number(row.get(x_key)) is not None),
        key=lambda row: finite_number(row.get(x_key)),
    )
    runs_by_spec = {spec: segments((row.get(x_key), row.get(spec.key)) for row in ordered) for spec in specs}
    points = [point for runs in runs_by_spec.values() for run in runs for point in run]
    chart.missing = [spec for spec in specs if not runs_by_spec[spec]]
    if not points:
        return chart
    # An alert's step is on the axis even where no loss is a number (a divergence to NaN).
    alert_xs = [x for x in (finite_number(m.x) for m in marks if m.kind == "alert") if x is not None]
    xs = [x for x, _ in points] + alert_xs
    ys = [y for _, y in points]
    x_ticks = nice_ticks(min(xs), max(xs)) if min(xs) != max(xs) else _around(xs[0])
    y_ticks = nice_ticks(min(ys), max(ys))
    sx = linear_scale((x_ticks[0], x_ticks[-1]), (left, right))
    sy = linear_scale((y_ticks[0], y_ticks[-1]), (bottom, top))
    chart.x_ticks = [Tick(sx(t), format_tick(t, x_ticks)) for t in x_ticks]
    chart.y_ticks = [Tick(sy(t), format_tick(t, y_ticks)) for t in y_ticks]
    for spec in specs:
        runs = runs_by_spec[spec]
        if not runs:
            continue
        chart.series.append(
            DrawnSeries(
                spec=spec,
                paths=[path_data(run, sx, sy) for run in runs if len(run) > 1],
                markers=[
                    Marker(round(sx(x), 1), round(sy(y), 1), f"{spec.label} at step {x:g}: {format_number(y, 6)}")
                    for run in runs
                    for x, y in run
                ],
                lone=all(len(run) == 1 for run in runs),
            )
        )
    chart.marks = _marks(marks, ordered, x_key, x_ticks, sx, sy, top=top, bottom=bottom)
    return chart


def _marks(
    specs: Sequence[MarkSpec],
    rows: Sequence[dict[str, Any]],
    x_key: str,
    x_ticks: Sequence[float],
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    *,
    top: float,
    bottom: float,
) -> list[Mark]:
    made = []
    for spec in specs:
        x = finite_number(spec.x)
        if x is None or not x_ticks[0] <= x <= x_ticks[-1]:
            continue
        if spec.kind == "best":
            values = [finite_number(row.get(spec.key)) for row in rows if finite_number(row.get(x_key)) == x]
            values = [value for value in values if value is not None]
            if not values:
                continue
            made.append(Mark(spec.kind, round(sx(x), 1), round(sy(values[0]), 1), spec.text))
        else:
            made.append(Mark(spec.kind, round(sx(x), 1), float(top) + 10, spec.text, bottom=float(bottom)))
    return made


def _around(x: float) -> list[float]:
    """Ticks for a lone x value: it sits in the middle of a small range."""
    step = nice_step(abs(x) * 0.2 or 2.0, 2)
    return [x - step, x, x + step]


def sparkline(values: Sequence[Any], *, width: int = 80, height: int = 20) -> str:
    """Path data of a tiny line through the finite values in order ("" when fewer than two)."""
    points = [(i, v) for i, v in enumerate(finite_number(value) for value in values) if v is not None]
    if len(points) < 2:
        return ""
    ys = [y for _, y in points]
    sx = linear_scale((points[0][0], points[-1][0]), (1, width - 1))
    sy = linear_scale((min(ys), max(ys)), (height - 2, 2))
    return path_data(points, sx, sy)


# --- Bar charts (the Spend page's months) ---------------------------------------------------


@dataclass
class BarSegment:
    y: float
    height: float
    style: str  # CSS class suffix of the series
    value: float


@dataclass
class Bar:
    label: str  # under the bar ("Mar")
    title: str  # the exact numbers, shown on hover (<title>)
    x: float
    width: float
    segments: list[BarSegment]

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass
class BarChart:
    title: str
    width: int
    height: int
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(segment.height > 0 for bar in self.bars for segment in bar.segments)


def money_tick(value: float, ticks: Sequence[float]) -> str:
    """A tick of US dollars: whole dollars, cents when the step is under a dollar."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    return f"${value:,.2f}" if step < 1 else f"${value:,.0f}"


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, str, Sequence[Any]]],
    styles: Sequence[str],
    *,
    width: int = 480,
    height: int = 240,
    tick: Callable[[float, Sequence[float]], str] = money_tick,
) -> BarChart:
    """Stacked bars from zero: each of `bars` is (label, hover text, one value per style). A
    value that is missing or negative draws nothing (never a bar below the axis)."""
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    chart = BarChart(title=title, width=width, height=height, plot=(left, top, right, bottom))
    cleaned = [
        (label, text, [max(0.0, finite_number(v) or 0.0) for v in values][: len(styles)])
        for label, text, values in bars
    ]
    highest = max((sum(values) for _, _, values in cleaned), default=0.0)
    ticks = nice_ticks(0.0, highest) if highest > 0 else [0.0, 1.0]
    sy = linear_scale((ticks[0], ticks[-1]), (bottom, top))
    chart.y_ticks = [Tick(sy(t), tick(t, ticks)) for t in ticks]
    slot = (right - left) / max(1, len(cleaned))
    bar_width = round(slot * 0.64, 1)
    for index, (label, text, values) in enumerate(cleaned):
        x = round(left + index * slot + (slot - bar_width) / 2, 1)
        segments, base = [], 0.0
        for style, value in zip(styles, values, strict=False):
            y_top, y_base = sy(base + value), sy(base)
            segments.append(BarSegment(y=round(y_top, 1), height=round(y_base - y_top, 1), style=style, value=value))
            base += value
        chart.bars.append(Bar(label=label, title=text, x=x, width=bar_width, segments=segments))
    return chart
