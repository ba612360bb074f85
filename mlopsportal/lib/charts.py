"""Small server-rendered SVG charts: no JavaScript, readable without a chart library, printable.

One component renders every chart. A selector describes a chart as data (a `Chart`: lines or bars, titles, number
formats); templates draw it with `{% load charts %}{% chart some_chart %}`. Nothing else builds SVG.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

MARGIN = {"left": 64, "right": 20, "top": 30, "bottom": 48}
HOVER_POINTS = 120  # invisible hover targets per line series, when it has no dots


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float | None]]  # a None value leaves a gap in the line
    css: str = ""


@dataclass(frozen=True)
class Band:
    """One layer of a stacked step chart: its value from each x until the next (a share that holds until changed)."""
    name: str
    values: list[float]  # one per Chart.steps_x


@dataclass(frozen=True)
class Chart:
    """What to draw. `series` for lines on shared axes; `bars` (label, value) for a bar chart or histogram; `bands`
    over `steps_x` for stacked steps (shares over time), each step linking to `step_links[i]` when given."""
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    bars: list[tuple[str, float]] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    steps_x: list[float] = field(default_factory=list)  # where each step starts; the last one ends at x_end
    x_end: float = 0.0
    step_links: list[str] = field(default_factory=list)
    x_tick_text: Callable[[float], str] | None = None  # instead of x_format (times, say)
    x_format: str = "{:g}"
    y_format: str = "{:.1f}"
    y_from_zero: bool = True  # False: the y axis spans the values (a metric that moves in its third decimal)...
    y_min_span: float = 0.05  # ...but at least this share of their size: 0.8300 vs 0.8312 is no cliff
    x_ticks_at_points: bool = False  # a tick under every point (versions), instead of five even steps
    markers: bool = False  # a dot with a tooltip on every point, the last one highlighted
    marks: list[tuple[float, str]] = field(default_factory=list)  # vertical lines at x, labelled (a knee, say)
    width: int = 720
    height: int = 260

    @property
    def values(self) -> list[tuple[float, float]]:
        return [(x, y) for s in self.series for x, y in s.points if y is not None]

    @property
    def empty(self) -> bool:
        return not self.bars and not self.values and not self.steps_x

    def x_text(self, value: float) -> str:
        return self.x_tick_text(value) if self.x_tick_text else self.x_format.format(value)


class _Frame:
    """The plot area of a chart and the mapping of values onto it."""

    def __init__(self, chart: Chart, x_range: tuple[float, float], y_range: tuple[float, float]):
        self.chart = chart
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.w = chart.width - MARGIN["left"] - MARGIN["right"]
        self.h = chart.height - MARGIN["top"] - MARGIN["bottom"]
        (self.x0, self.x1), (self.y0, self.y1) = x_range, y_range

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, value: float) -> float:
        return self.top + self.h - (value - self.y0) / (self.y1 - self.y0) * self.h

    def grid(self, y_format: str) -> list[str]:
        parts = []
        for i in range(5):
            value = self.y0 + (self.y1 - self.y0) * i / 4
            y = self.y(value)
            parts.append(f'<line x1="{self.left}" x2="{self.left + self.w}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'class="chart-grid"/><text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                         f'class="chart-tick">{escape(y_format.format(value))}</text>')
        return parts

    def x_tick(self, x: float, label: str) -> str:
        return (f'<text x="{x:.1f}" y="{self.top + self.h + 18}" text-anchor="middle" class="chart-tick">'
                f'{escape(label)}</text>')

    def axis_labels(self) -> str:
        chart, middle = self.chart, self.top + self.h / 2
        return (f'<text x="{self.left + self.w / 2}" y="{chart.height - 6}" text-anchor="middle" class="chart-label">'
                f'{escape(chart.x_label)}</text><text x="14" y="{middle}" text-anchor="middle" class="chart-label" '
                f'transform="rotate(-90 14 {middle})">{escape(chart.y_label)}</text>')


def _span(low: float, high: float, *, pad: bool, at_least: float = 0.0) -> tuple[float, float]:
    """The axis range for values from `low` to `high`: padded by a tenth, and at least `at_least` of the values'
    size wide (centred on them), so that a tiny difference is drawn as tiny."""
    if low == high and not at_least:
        margin = abs(low) * 0.05 or 1.0
        return low - margin, high + margin
    margin = (high - low) * 0.1 if pad else 0.0
    low, high = low - margin, high + margin
    wanted = max(abs(low), abs(high)) * at_least
    if high - low < wanted:
        middle = (low + high) / 2
        low, high = middle - wanted / 2, middle + wanted / 2
    if low == high:
        low, high = low - 1.0, high + 1.0
    return low, high


def _lines(chart: Chart) -> list[str]:
    values = chart.values
    xs = [x for x, _ in values] + [x for x, _ in chart.marks]
    ys = [y for _, y in values]
    x_range = (min(xs), max(xs)) if min(xs) != max(xs) else (min(xs) - 1, max(xs) + 1)
    y_range = (0.0, max(ys) * 1.1 or 1.0) if chart.y_from_zero else _span(min(ys), max(ys), pad=True,
                                                                           at_least=chart.y_min_span)
    frame = _Frame(chart, x_range, y_range)
    parts = frame.grid(chart.y_format)
    if chart.x_ticks_at_points:
        points = sorted({x for x, _ in values})
        ticks = points[::max(1, len(points) // 10)]
    else:
        ticks = [round(x_range[0] + (x_range[1] - x_range[0]) * i / 5, 1) for i in range(6)]
    parts += [frame.x_tick(frame.x(x), chart.x_format.format(x)) for x in ticks]
    parts.append(frame.axis_labels())
    for x, label in chart.marks:
        parts.append(f'<line x1="{frame.x(x):.1f}" x2="{frame.x(x):.1f}" y1="{frame.top}" y2="{frame.top + frame.h}" '
                     f'class="chart-mark"/><text x="{frame.x(x) + 4:.1f}" y="{frame.top + 12}" '
                     f'class="chart-tick chart-mark-label">{escape(label)}</text>')
    legend = len(chart.series) > 1
    radius = 4 if len(values) <= 60 else 2
    for index, series in enumerate(chart.series):
        css = series.css or f"series-{index}"
        segment: list[str] = []
        for x, y in [*series.points, (0, None)]:  # the sentinel closes the last segment
            if y is not None:
                segment.append(f"{frame.x(x):.1f},{frame.y(y):.1f}")
            elif segment:
                parts.append(f'<polyline points="{" ".join(segment)}" class="chart-line {css}"/>')
                segment = []
        drawn = [(x, y) for x, y in series.points if y is not None]
        if chart.markers:
            for i, (x, y) in enumerate(drawn):
                last = " last" if i == len(drawn) - 1 else ""
                parts.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="{radius}" '
                             f'class="chart-point{last}"><title>{escape(chart.x_text(x))}: '
                             f'{escape(chart.y_format.format(y))}</title></circle>')
        else:  # no dots drawn, but the values still show on hover (at most HOVER_POINTS a series)
            for x, y in drawn[::max(1, len(drawn) // HOVER_POINTS)]:
                parts.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="4" class="chart-hit">'
                             f'<title>{escape(series.name)} at {escape(chart.x_text(x))}: '
                             f'{escape(chart.y_format.format(y))}</title></circle>')
        if legend:
            parts.append(f'<rect x="{frame.left + 10 + index * 90}" y="8" width="12" height="4" class="legend {css}"/>'
                         f'<text x="{frame.left + 26 + index * 90}" y="14" class="chart-tick">'
                         f'{escape(series.name)}</text>')
    return parts


def _bars(chart: Chart) -> list[str]:
    top_value = max(v for _, v in chart.bars) or 1
    frame = _Frame(chart, (0, len(chart.bars)), (0, top_value))
    parts = frame.grid("{:,.0f}")
    slot = frame.w / len(chart.bars)
    label_every = max(1, len(chart.bars) // 8)
    for i, (label, value) in enumerate(chart.bars):
        height = value / top_value * frame.h
        x = frame.x(i)
        parts.append(f'<rect x="{x + 1:.1f}" y="{frame.top + frame.h - height:.1f}" width="{max(1.0, slot - 2):.1f}" '
                     f'height="{height:.1f}" class="chart-bar"><title>≤ {escape(label)}: {value:,.0f}</title></rect>')
        if i % label_every == 0:
            parts.append(frame.x_tick(x + slot / 2, label))
    parts.append(frame.axis_labels())
    return parts


def _steps(chart: Chart) -> list[str]:
    xs = [*chart.steps_x, max(chart.x_end, chart.steps_x[-1])]
    x_range = (xs[0], xs[-1]) if xs[0] != xs[-1] else (xs[0] - 1, xs[0] + 1)
    top = max([sum(b.values[i] for b in chart.bands) for i in range(len(chart.steps_x))] or [0]) or 1
    frame = _Frame(chart, x_range, (0, top))
    parts = frame.grid(chart.y_format)
    parts += [frame.x_tick(frame.x(x), chart.x_text(x))
              for x in (x_range[0] + (x_range[1] - x_range[0]) * i / 4 for i in range(5))]
    parts.append(frame.axis_labels())
    below = [0.0] * len(chart.steps_x)
    for index, band in enumerate(chart.bands):
        css = f"series-{index % 8}"
        for i, value in enumerate(band.values):
            if not value:
                continue
            x0, x1 = frame.x(xs[i]), frame.x(xs[i + 1])
            y_top, y_bottom = frame.y(below[i] + value), frame.y(below[i])
            shape = (f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{max(0.5, x1 - x0):.1f}" '
                     f'height="{y_bottom - y_top:.1f}" class="chart-band {css}"><title>{escape(band.name)}: '
                     f'{escape(chart.y_format.format(value))} from {escape(chart.x_text(xs[i]))}</title></rect>')
            link = chart.step_links[i] if i < len(chart.step_links) else ""
            parts.append(f'<a href="{escape(link)}">{shape}</a>' if link else shape)
        below = [b + v for b, v in zip(below, band.values, strict=True)]
        column, row = index % 4, index // 4
        parts.append(f'<rect x="{frame.left + 10 + column * 150}" y="{4 + row * 12}" width="12" height="8" '
                     f'class="legend {css}"/><text x="{frame.left + 26 + column * 150}" y="{12 + row * 12}" '
                     f'class="chart-tick">{escape(band.name[:22])}</text>')
    return parts


def render(chart: Chart) -> SafeString:
    """The chart as an SVG element; every text in it escaped."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} {chart.height}" class="chart" '
             f'role="img" aria-label="{escape(chart.title)}"><title>{escape(chart.title)}</title>']
    if chart.empty:
        parts.append(f'<text x="{chart.width / 2}" y="{chart.height / 2}" text-anchor="middle" class="chart-empty">'
                     'No data yet</text>')
    else:
        parts += _bars(chart) if chart.bars else _steps(chart) if chart.steps_x else _lines(chart)
    return mark_safe("".join(parts) + "</svg>")  # noqa: S308 (built above from escaped parts)


@register.simple_tag(name="chart")
def chart_tag(chart: Chart) -> SafeString:
    """The chart in a box that scrolls sideways on a narrow screen, so its text keeps a readable size."""
    return mark_safe(f'<div class="chart-box">{render(chart)}</div>')  # noqa: S308 (render escapes every text)
