"""Small server-rendered SVG charts: no JavaScript, readable without a chart library, printable."""
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class LineChart:
    svg: str
    points: int


def _nice_bounds(low: float, high: float) -> tuple[float, float]:
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.1
    return low - pad, high + pad


def line_chart(points: list[tuple[float, float]], *, title: str, x_label: str, y_label: str,
               width: int = 720, height: int = 260, x_format: str = "v{:g}", y_format: str = "{:.4f}",
               highlight_last: bool = True) -> LineChart:
    """An SVG line chart of (x, y) points with axes, gridlines and a tooltip (<title>) on every point."""
    left, right, top, bottom = 70, 20, 30, 45
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" '
             f'aria-label="{escape(title)}">', f'<title>{escape(title)}</title>']
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">'
                     'No data yet</text></svg>')
        return LineChart("".join(parts), 0)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = (min(xs), max(xs)) if min(xs) != max(xs) else (min(xs) - 1, max(xs) + 1)
    y0, y1 = _nice_bounds(min(ys), max(ys))

    def sx(x):
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y):
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    for i in range(5):  # horizontal gridlines with labels
        value = y0 + (y1 - y0) * i / 4
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="chart-tick">'
                     f'{escape(y_format.format(value))}</text>')
    step = max(1, len(points) // 10)
    for x, _ in points[::step]:
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle" class="chart-tick">'
                     f'{escape(x_format.format(x))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" class="chart-label">'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" class="chart-label" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    parts.append(f'<path d="{path}" class="chart-line"/>')
    radius = 4 if len(points) <= 60 else 2
    for i, (x, y) in enumerate(points):
        cls = "chart-point last" if highlight_last and i == len(points) - 1 else "chart-point"
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" class="{cls}">'
                     f'<title>{escape(x_format.format(x))}: {escape(y_format.format(y))}</title></circle>')
    parts.append("</svg>")
    return LineChart("".join(parts), len(points))


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float | None]]
    css: str = ""


def multi_line_chart(series: list[Series], *, title: str, x_label: str, y_label: str, width: int = 720,
                     height: int = 260, x_format: str = "{:g}", y_format: str = "{:.1f}") -> str:
    """Several lines on shared axes, with a legend; points with a None value leave a gap."""
    left, right, top, bottom = 60, 20, 30, 45
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [(x, y) for s in series for x, y in s.points if y is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    if not values:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">No data</text>')
        return "".join(parts) + "</svg>"
    xs = [x for x, _ in values]
    x0, x1 = (min(xs), max(xs)) if min(xs) != max(xs) else (min(xs) - 1, max(xs) + 1)
    y0, y1 = 0.0, max(y for _, y in values) * 1.1 or 1.0

    def sx(x):
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y):
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                     f'class="chart-grid"/><text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end" '
                     f'class="chart-tick">{escape(y_format.format(value))}</text>')
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle" class="chart-tick">'
                     f'{escape(x_format.format(round(x, 1)))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" class="chart-label">'
                 f'{escape(x_label)}</text><text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'class="chart-label" transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>')
    for index, s in enumerate(series):
        segments, current = [], []
        for x, y in s.points:
            if y is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(f"{sx(x):.1f},{sy(y):.1f}")
        if current:
            segments.append(current)
        css = s.css or f"series-{index}"
        for segment in segments:
            parts.append(f'<polyline points="{" ".join(segment)}" class="chart-line {css}"/>')
        parts.append(f'<rect x="{left + 10 + index * 90}" y="8" width="12" height="4" class="legend {css}"/>'
                     f'<text x="{left + 26 + index * 90}" y="14" class="chart-tick">{escape(s.name)}</text>')
    return "".join(parts) + "</svg>"


def bar_chart(bars: list[tuple[str, float]], *, title: str, x_label: str, y_label: str, width: int = 720,
              height: int = 240) -> str:
    """Vertical bars with a label under each (a histogram when the labels are bucket edges)."""
    left, right, top, bottom = 60, 20, 20, 55
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    if not bars:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">No data</text>')
        return "".join(parts) + "</svg>"
    top_value = max(v for _, v in bars) or 1
    slot = plot_w / len(bars)
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - value / top_value * plot_h
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="chart-tick">{value:,.0f}</text>')
    label_every = max(1, len(bars) // 8)
    for i, (label, value) in enumerate(bars):
        h = value / top_value * plot_h
        x = left + i * slot
        parts.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, slot - 2):.1f}" '
                     f'height="{h:.1f}" class="chart-bar"><title>≤ {escape(label)}: {value:,.0f}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                         f'class="chart-tick">{escape(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="chart-label">'
                 f'{escape(x_label)}</text><text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'class="chart-label" transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>')
    return "".join(parts) + "</svg>"
