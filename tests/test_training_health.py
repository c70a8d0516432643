"""The training-health rules and the best checkpoint (jobs.training_health), at their edges: pure
functions fed what the sync stores (metrics with nulls and the "NaN"/"Infinity" strings kept for
non-finite values), checked against what the message a person reads says."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from jobs import training_health
from jobs.training_health import Best, Point, best_checkpoint, diverged, eta_slipped, is_non_finite, overfitting, slow

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def stored(*metrics: dict | None, steps: int = 100) -> list[SimpleNamespace]:
    """Checkpoints as the sync stores them (upstream_id, step, metrics), an epoch apart."""
    return [
        SimpleNamespace(upstream_id=f"ftckpt_{n}", step=n * steps, metrics=m) for n, m in enumerate(metrics, start=1)
    ]


def losses(*pairs: tuple) -> list[Point]:
    """Points from (train loss, valid loss) pairs."""
    return training_health.points(stored(*({"train_loss": t, "valid_loss": v} for t, v in pairs)))


# --- is_non_finite and points ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-Infinity", "nan", " inf ", "-INF"],
)
def test_nan_and_infinities_as_floats_or_stored_strings_are_non_finite(value):
    assert is_non_finite(value)


@pytest.mark.parametrize("value", [0.0, 1.5, -2, 10**400, "1.5", "", "NaNa", "infinite", None, True, [], {}])
def test_numbers_missing_values_and_other_text_are_not(value):
    assert not is_non_finite(value)


def test_points_number_epochs_from_one_and_prefer_the_full_validation_loss():
    made = training_health.points(
        stored(
            {"train_loss": 1.2, "valid_loss": 1.3, "full_valid_loss": 1.25},
            {"train_loss": 1.0, "valid_loss": 1.1},
            {"train_loss": 0.9, "valid_loss": 1.0, "full_valid_loss": "NaN"},
        )
    )
    assert [(p.epoch, p.upstream_id, p.step) for p in made] == [
        (1, "ftckpt_1", 100),
        (2, "ftckpt_2", 200),
        (3, "ftckpt_3", 300),
    ]
    assert [(p.valid_loss, p.valid_metric) for p in made] == [
        (1.25, "full_valid_loss"),
        (1.1, "valid_loss"),
        (1.0, "valid_loss"),  # a non-finite full-validation loss is not a value: the validation one is
    ]
    assert [p.non_finite for p in made] == [(), (), ("full_valid_loss",)]


def test_points_read_nulls_text_booleans_and_missing_metrics_as_no_value():
    made = training_health.points(
        stored(
            {"train_loss": None, "valid_loss": None},
            {"train_loss": "0.9", "valid_loss": True},
            None,
            {},
            {"train_loss": "Infinity", "valid_loss": "-Infinity", "full_valid_loss": "NaN"},
        )
    )
    assert [(p.train_loss, p.valid_loss) for p in made] == [(None, None)] * 5
    assert [p.non_finite for p in made] == [(), (), (), (), ("train_loss", "valid_loss", "full_valid_loss")]
    assert training_health.points([]) == []


# --- the best checkpoint -----------------------------------------------------------------------


def test_the_best_checkpoint_has_the_lowest_validation_loss_and_says_why():
    best = best_checkpoint(losses((1.3, 1.2), (1.0, 0.95), (0.8, 0.81), (0.7, 0.86)), has_validation=True)
    assert (best.point.epoch, best.point.upstream_id, best.metric, best.value) == (3, "ftckpt_3", "valid_loss", 0.81)
    assert best.reason == "lowest valid loss (0.81)"
    assert best.summary == "epoch 3, valid loss 0.81"
    assert best.metric_label == "valid loss"


def test_the_full_validation_loss_wins_where_a_checkpoint_has_one():
    made = training_health.points(
        stored(
            {"train_loss": 1.0, "valid_loss": 0.70, "full_valid_loss": 0.90},
            {"train_loss": 0.9, "valid_loss": 0.80, "full_valid_loss": 0.85},
        )
    )
    best = best_checkpoint(made, has_validation=True)
    assert (best.point.epoch, best.summary, best.reason) == (
        2,
        "epoch 2, full-valid loss 0.85",
        "lowest full-valid loss (0.85)",
    )


def test_without_a_validation_file_the_best_has_the_lowest_training_loss():
    best = best_checkpoint(losses((1.0, None), (0.6, None), (0.7, None)), has_validation=False)
    assert (best.point.epoch, best.summary) == (2, "epoch 2, train loss 0.6")


def test_the_earliest_of_equals_is_best_and_checkpoints_without_losses_have_none():
    assert best_checkpoint(losses((1.0, 0.8), (0.9, 0.8)), has_validation=True).point.epoch == 1
    assert best_checkpoint(losses((None, None), (None, "NaN")), has_validation=True) is None
    assert best_checkpoint([], has_validation=True) is None


def test_large_losses_read_in_scientific_notation():
    best = Best(losses((1.0, 12345.678))[0], "valid_loss", 12345.678)
    assert best.summary == "epoch 1, valid loss 1.235e+04"


# --- overfitting -------------------------------------------------------------------------------


def test_overfitting_is_two_rises_of_the_validation_loss_while_training_falls():
    run = [(1.3, 1.2), (1.0, 0.95), (0.8, 0.81), (0.7, 0.86), (0.6, 0.93)]
    assert overfitting(losses(*run[:4])) is None  # one rise
    assert overfitting(losses(*run)) == (
        "Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93); the best checkpoint is epoch 3 (ftckpt_3)"
    )


def test_a_flat_step_is_not_a_rise_and_a_fall_resets_the_count():
    assert overfitting(losses((1.0, 0.8), (0.9, 0.8), (0.8, 0.9))) is None
    assert overfitting(losses((1.0, 0.8), (0.9, 0.9), (0.8, 0.85), (0.7, 0.88))) is None


def test_training_loss_rising_too_is_not_overfitting():
    assert overfitting(losses((0.7, 0.81), (0.75, 0.86), (0.8, 0.93))) is None
    # Flat training loss did not rise: overfitting.
    assert overfitting(losses((0.7, 0.81), (0.7, 0.86), (0.7, 0.93))) is not None
    # No training loss to tell: the validation loss alone decides.
    assert overfitting(losses((None, 0.81), (None, 0.86), (None, 0.93))) is not None


def test_the_number_of_rises_is_a_setting():
    run = losses((1.0, 0.81), (0.9, 0.86), (0.8, 0.93))
    assert overfitting(run, rises=3) is None
    assert overfitting(run, rises=1) == (
        "Validation loss has risen for 1 checkpoint (0.86 → 0.93); the best checkpoint is epoch 1 (ftckpt_1)"
    )
    assert overfitting(run, rises=0) is None


def test_checkpoints_without_a_validation_loss_are_skipped_and_no_validation_file_is_no_overfitting():
    run = losses((1.0, 0.81), (0.95, None), (0.9, 0.86), (0.85, "NaN"), (0.8, 0.93))
    assert overfitting(run).startswith("Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93)")
    assert overfitting(run, has_validation=False) is None
    assert overfitting(losses((None, None), (None, None), (None, None))) is None
    assert overfitting([]) is None


# --- diverged ----------------------------------------------------------------------------------


def test_a_nan_or_infinite_loss_of_the_latest_checkpoint_is_a_divergence():
    assert diverged(losses((1.0, 1.1), ("NaN", 1.0))) == "The train loss of epoch 2 is not a number (NaN or infinite)"
    assert diverged(losses(("Infinity", 1.0))) == "The train loss of epoch 1 is not a number (NaN or infinite)"
    assert diverged(losses((1.0, "NaN"))) == "The valid loss of epoch 1 is not a number (NaN or infinite)"
    both = training_health.points(stored({"train_loss": float("nan"), "full_valid_loss": "-Infinity"}))
    assert diverged(both) == "The train loss, full valid loss of epoch 1 is not a number (NaN or infinite)"


def test_only_the_latest_checkpoint_counts_a_nan_before_it_is_history():
    assert diverged(losses(("NaN", 1.0), (0.9, 1.0))) is None


def test_a_loss_that_at_least_doubles_is_a_divergence():
    assert diverged(losses((0.5, 1.0), (1.0, 1.0))) == (
        "The training loss jumped from 0.5 to 1 (×2.0) between epochs 1 and 2"
    )
    assert diverged(losses((0.5, 1.0), (0.99, 1.0))) is None
    assert diverged(losses((0.5, 0.4), (0.45, 1.2))) == (
        "The validation loss jumped from 0.4 to 1.2 (×3.0) between epochs 1 and 2"
    )


def test_the_factor_is_a_setting():
    run = losses((0.5, 1.0), (1.2, 1.0))
    assert diverged(run, factor=3.0) is None
    assert diverged(run, factor=2.4) is not None


def test_no_jump_is_read_from_missing_zero_or_negative_losses():
    assert diverged([]) is None
    assert diverged(losses((1.0, 1.0))) is None
    assert diverged(losses((None, None), (5.0, 5.0))) is None
    assert diverged(losses((0.0, 0.0), (5.0, 5.0))) is None
    assert diverged(losses((-1.0, -1.0), (5.0, 5.0))) is None


# --- eta_slipped -------------------------------------------------------------------------------


def slip(minutes_left: float, later_by: float, **settings) -> str | None:
    return eta_slipped(
        first_estimate=T0 + dt.timedelta(minutes=minutes_left),
        first_seen_at=T0,
        estimate=T0 + dt.timedelta(minutes=minutes_left + later_by),
        **settings,
    )


def test_an_estimate_later_by_more_than_half_the_time_left_has_slipped():
    assert slip(60, 30) is None  # exactly 50%: not more
    assert (
        slip(60, 31) == "The estimated finish moved 31 min later than first estimated (52% of the 60 min it had left)"
    )
    assert slip(60, -40) is None  # sooner is good news


def test_a_slip_must_also_be_at_least_the_minutes_setting():
    assert slip(10, 14) is None  # 140% of the time left, but under 15 minutes
    assert slip(10, 15) is not None
    assert slip(10, 9, minutes=5) is not None


def test_the_percentage_is_a_setting():
    assert slip(120, 40, percent=50) is None
    assert slip(120, 40, percent=30) is not None


def test_no_first_estimate_or_none_now_or_one_already_past_is_no_slip():
    assert eta_slipped(first_estimate=None, first_seen_at=T0, estimate=T0) is None
    assert eta_slipped(first_estimate=T0, first_seen_at=None, estimate=T0) is None
    assert eta_slipped(first_estimate=T0, first_seen_at=T0, estimate=None) is None
    assert (
        eta_slipped(first_estimate=T0, first_seen_at=T0 + dt.timedelta(minutes=5), estimate=T0 + dt.timedelta(hours=2))
        is None
    )


# --- slow --------------------------------------------------------------------------------------


def paced(*per_minute: float, every: int = 5) -> list[tuple[dt.datetime, int]]:
    """Samples `every` minutes apart from T0, at these paces (steps a minute) in turn."""
    samples, steps = [(T0, 0)], 0
    for pace in per_minute:
        steps += int(pace * every)
        samples.append((samples[-1][0] + dt.timedelta(minutes=every), steps))
    return samples


def at_end(samples):
    return samples[-1][0]


def test_a_pace_under_40_percent_of_the_jobs_median_over_15_minutes_is_slow():
    samples = paced(*[600] * 7, 120, 120, 120)
    assert (
        slow(samples, now=at_end(samples)) == "120.0 steps a minute over the last 15 min, 20% of this job's usual 600.0"
    )


def test_a_partly_slow_window_or_40_percent_exactly_is_not_slow():
    samples = paced(*[600] * 7, 600, 120, 120)
    assert slow(samples, now=at_end(samples)) is None  # (600 + 120 + 120) / 3 = 47%
    samples = paced(*[600] * 7, 240, 240, 240)
    assert slow(samples, now=at_end(samples)) is None  # 40% exactly


def test_a_stall_is_not_slow():
    samples = paced(*[600] * 7, 0, 0, 0)
    assert slow(samples, now=at_end(samples)) is None


def test_the_median_is_the_jobs_own_and_ignores_stops_and_one_burst():
    samples = paced(600, 0, 600, 6000, 600, 0, 600, 200, 200, 200)
    assert (
        slow(samples, now=at_end(samples)) == "200.0 steps a minute over the last 15 min, 33% of this job's usual 600.0"
    )


def test_a_short_history_or_few_samples_is_not_judged():
    samples = paced(600, 600, 600, 100, 100, 100)  # 30 minutes: exactly two windows
    assert slow(samples, now=at_end(samples)) is not None
    assert slow(samples[1:], now=at_end(samples)) is None  # 25 minutes
    assert slow(paced(600, 100, every=30), now=T0 + dt.timedelta(minutes=60)) is None  # 3 samples, one rate
    assert slow([], now=T0) is None


def test_the_window_and_the_percentage_are_settings():
    samples = paced(*[600] * 7, 300, 300)  # 50% for the last 10 minutes
    assert slow(samples, now=at_end(samples)) is None
    assert slow(samples, now=at_end(samples), window_minutes=10, percent=60) == (
        "300.0 steps a minute over the last 10 min, 50% of this job's usual 600.0"
    )


def test_samples_that_stopped_coming_say_nothing_of_the_pace_now():
    samples = paced(*[600] * 8)
    later = at_end(samples) + dt.timedelta(minutes=30)
    assert slow(samples, now=later) is None  # no sample in the last 15 minutes
