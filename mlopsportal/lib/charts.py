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
