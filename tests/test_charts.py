"""The one chart component: lines with gaps, bars, an empty chart, and every text escaped."""
from django.template import Context, Template

from mlopsportal.lib.charts import Chart, Series, render


def test_lines_leave_a_gap_for_missing_values_and_show_a_legend():
    svg = render(Chart(title="t", x_label="s", y_label="ms", series=[
        Series("p50", [(0, 1.0), (1, None), (2, 3.0), (3, 4.0)]), Series("p95", [(0, 2.0), (3, 5.0)])]))
    assert svg.count("<polyline") == 3  # p50 in two pieces, p95 in one
    assert ">p50</text>" in svg and ">p95</text>" in svg


def test_markers_carry_a_tooltip_and_the_last_is_highlighted():
    svg = render(Chart(title="acc", x_label="version", y_label="acc", series=[Series("acc", [(1, 0.8), (2, 0.81)])],
                       x_format="v{:g}", y_format="{:.2f}", y_from_zero=False, x_ticks_at_points=True, markers=True))
    assert svg.count('class="chart-point') == 2 and svg.count('class="chart-point last"') == 1
    assert "<title>v2: 0.81</title>" in svg


def test_bars_and_an_empty_chart():
    assert svg_count(render(Chart(title="h", x_label="ms", y_label="n", bars=[("1", 3), ("2", 0)])), "chart-bar") == 2
    assert "No data yet" in render(Chart(title="h", x_label="ms", y_label="n"))


def test_text_is_escaped_and_the_tag_renders_it():
    chart = Chart(title='<script>alert("x")</script>', x_label="<b>", y_label="y", series=[Series("<i>", [(0, 1)])])
    html = Template("{% load charts %}{% chart c %}").render(Context({"c": chart}))
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert html.startswith('<div class="chart-box"><svg')


def svg_count(svg: str, css: str) -> int:
    return svg.count(f'class="{css}"')


def test_a_tiny_difference_is_drawn_tiny_and_steps_stack_with_links():
    import re

    svg = render(Chart(title="acc", x_label="version", y_label="acc", y_format="{:.4f}", y_from_zero=False,
                       series=[Series("acc", [(1, 0.8300), (2, 0.8312)])], markers=True))
    ticks = [float(t) for t in re.findall(r'class="chart-tick">(0\.\d{4})</text>', svg)]
    assert max(ticks) - min(ticks) >= 0.04  # the axis spans 5% of the values, not 0.0012 padded
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert abs(ys[0] - ys[1]) < 10  # a few pixels apart, not the whole height

    from mlopsportal.lib.charts import Band

    svg = render(Chart(title="share", x_label="t", y_label="%", bands=[Band("v1", [100, 50, 0]), Band("v2", [0, 50, 100])],
                       steps_x=[0, 10, 20], x_end=30, step_links=["/a", "/b", "/c"]))
    assert svg.count('class="chart-band series-0"') == 2 and svg.count('class="chart-band series-1"') == 2
    assert '<a href="/b">' in svg and "<title>v2: 50.0 from 10</title>" in svg
