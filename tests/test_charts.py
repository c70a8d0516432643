"""Chart geometry (jobs/charts.py): ticks people can read, scales, and lines that survive gaps."""

from __future__ import annotations

import math

import pytest

from jobs import charts
from jobs.charts import SeriesSpec
from jobs.finetuning import finite_number

LOSS = SeriesSpec("train_loss", "Train loss", "solid")
VALID = SeriesSpec("valid_loss", "Valid loss", "dashed")


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0.31, 2.4, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
        (3, 7, [3, 4, 5, 6, 7]),
        (0.1, 0.3, [0.1, 0.15, 0.2, 0.25, 0.3]),
    ],
)
def test_ticks_step_by_one_two_or_five_and_cover_the_data(low, high, expected):
    assert charts.nice_ticks(low, high) == pytest.approx(expected)


def test_ticks_of_a_flat_series_still_make_a_range():
    ticks = charts.nice_ticks(0.5, 0.5)
    assert ticks[0] < 0.5 < ticks[-1]


def test_tick_labels_have_the_decimals_the_step_needs():
    ticks = charts.nice_ticks(0.1, 0.3)
    assert [charts.format_tick(t, ticks) for t in ticks] == ["0.10", "0.15", "0.20", "0.25", "0.30"]
    ticks = charts.nice_ticks(0, 1000)
    assert charts.format_tick(ticks[1], ticks) == "200"


def test_a_linear_scale_maps_ends_to_ends_and_can_run_backwards():
    sy = charts.linear_scale((0, 10), (200, 0))
    assert sy(0) == 200 and sy(10) == 0 and sy(5) == 100


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), "NaN", "Infinity", True, "1.0"])
def test_anything_but_a_finite_number_is_missing(missing):
    assert finite_number(missing) is None
    assert charts.format_number(missing) == "—"


def test_numbers_show_four_significant_digits():
    assert charts.format_number(1.234567) == "1.235"
    assert charts.format_number(0.000123456) == "0.0001235"
    assert charts.format_number(3) == "3"


def test_a_gap_splits_the_line():
    runs = charts.segments([(1, 1.0), (2, None), (3, 0.5), (4, float("nan")), (5, 0.4), (6, 0.3)])
    assert runs == [[(1, 1.0)], [(3, 0.5)], [(5, 0.4), (6, 0.3)]]


def test_path_data_moves_then_draws():
    same = charts.linear_scale((0, 1), (0, 1))
    assert charts.path_data([(0, 0), (1, 1)], same, same) == "M0.0 0.0 L1.0 1.0"


def test_a_chart_draws_each_series_with_a_point_per_value():
    rows = [{"step": s, "train_loss": 2 / s, "valid_loss": 2.2 / s} for s in (10, 20, 30)]
    chart = charts.line_chart("Loss", [LOSS, VALID], rows)

    assert not chart.empty and chart.missing == []
    assert [len(drawn.markers) for drawn in chart.series] == [3, 3]
    assert all(len(drawn.paths) == 1 for drawn in chart.series)
    assert chart.series[0].markers[0].text == "Train loss at step 10: 0.2"
    left, top, right, bottom = chart.plot
    for drawn in chart.series:
        for marker in drawn.markers:
            assert left <= marker.cx <= right and top <= marker.cy <= bottom
    assert [tick.label for tick in chart.x_ticks][0] == "10"


def test_a_series_without_values_is_reported_missing_and_the_rest_is_drawn():
    rows = [{"step": 1, "train_loss": 1.0, "valid_loss": "NaN"}, {"step": 2, "train_loss": 0.8, "valid_loss": None}]
    chart = charts.line_chart("Loss", [LOSS, VALID], rows)

    assert [drawn.spec for drawn in chart.series] == [LOSS]
    assert chart.missing == [VALID]


def test_a_single_point_is_a_marker_not_a_broken_line():
    chart = charts.line_chart("Loss", [LOSS], [{"step": 5, "train_loss": 0.7}])

    drawn = chart.series[0]
    assert drawn.lone and drawn.paths == [] and len(drawn.markers) == 1
    left, _, right, _ = chart.plot
    assert left < drawn.markers[0].cx < right
    assert all(math.isfinite(tick.position) for tick in chart.x_ticks + chart.y_ticks)


def test_no_data_at_all_is_an_empty_chart():
    chart = charts.line_chart("Loss", [LOSS], [{"step": None, "train_loss": 1}, {"step": 1}])
    assert chart.empty and chart.missing == [LOSS] and chart.x_ticks == []


def test_rows_are_drawn_in_step_order():
    rows = [{"step": 3, "train_loss": 0.3}, {"step": 1, "train_loss": 1.0}, {"step": 2, "train_loss": 0.5}]
    chart = charts.line_chart("Loss", [LOSS], rows)
    xs = [marker.cx for marker in chart.series[0].markers]
    assert xs == sorted(xs)


def test_a_sparkline_needs_two_values_and_skips_missing_ones():
    assert charts.sparkline([1.0]) == ""
    assert charts.sparkline([1.0, None, "NaN"]) == ""
    line = charts.sparkline([1.0, None, 0.5, 0.25])
    assert line.startswith("M") and line.count("L") == 2
