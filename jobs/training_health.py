"""Is a run going wrong? The training-health rules and the best checkpoint, as pure functions.

No database and no Django here: `jobs.sync.health` feeds these what the sync stored (checkpoints
in step order, the first and the current ETA, progress samples) and records what they say;
pages, compare and exports ask `best_checkpoint` the same question. Each rule answers with a
message when its condition holds and None when it does not, so "raised" and "cleared" are
the same function read twice.

Losses: the validation loss is the full-validation loss where a checkpoint has one, else the
validation loss. A stored metric may be a finite number, missing/null (no opinion), or
non-finite (NaN or infinite, kept by the sync as the strings "NaN"/"Infinity"): only the last
is a divergence.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.finetuning import finite_number
from jobs.humanize import span

RULE_LABELS = {
    "overfitting": "Overfitting",
    "diverged": "Diverged",
    "eta_slipped": "ETA slipped",
    "slow": "Slow",
}
NON_FINITE_STRINGS = frozenset({"nan", "infinity", "-infinity", "inf", "-inf"})


def is_non_finite(value: Any) -> bool:
    """NaN or ±infinity, as a float or as the strings the sync stores them as."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower() in NON_FINITE_STRINGS


@dataclass(frozen=True)
class Point:
    """One checkpoint as the rules read it (epoch counts from 1 in step order)."""

    epoch: int
    upstream_id: str
    step: int | None
    train_loss: float | None
    valid_loss: float | None  # full-validation where present, else validation
    valid_metric: str  # "full_valid_loss" or "valid_loss": which one valid_loss is
    non_finite: tuple[str, ...]  # the loss keys that were NaN or infinite


LOSS_KEYS = ("train_loss", "valid_loss", "full_valid_loss")
LOSS_LABELS = {"train_loss": "train loss", "valid_loss": "valid loss", "full_valid_loss": "full-valid loss"}


def points(checkpoints: Iterable[Any]) -> list[Point]:
    """`checkpoints` (objects with upstream_id, step, metrics; in step order) as Points."""
    made = []
    for epoch, checkpoint in enumerate(checkpoints, start=1):
        metrics = checkpoint.metrics if isinstance(checkpoint.metrics, dict) else {}
        full = finite_number(metrics.get("full_valid_loss"))
        valid = full if full is not None else finite_number(metrics.get("valid_loss"))
        made.append(
            Point(
                epoch=epoch,
                upstream_id=checkpoint.upstream_id,
                step=checkpoint.step,
                train_loss=finite_number(metrics.get("train_loss")),
                valid_loss=valid,
                valid_metric="full_valid_loss" if full is not None else "valid_loss",
                non_finite=tuple(key for key in LOSS_KEYS if is_non_finite(metrics.get(key))),
            )
        )
    return made


def _loss(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.3e}"


# --- The best checkpoint --------------------------------------------------------------------


@dataclass(frozen=True)
class Best:
    point: Point
    metric: str  # "full_valid_loss", "valid_loss" or "train_loss"
    value: float

    @property
    def metric_label(self) -> str:
        return LOSS_LABELS[self.metric]

    @property
    def reason(self) -> str:
        """Why this one, as text: "lowest valid loss (0.81)"."""
        return f"lowest {self.metric_label} ({_loss(self.value)})"

    @property
    def summary(self) -> str:
        """The progress panel's "Best so far: epoch 3, valid loss 0.81"."""
        return f"epoch {self.point.epoch}, {self.metric_label} {_loss(self.value)}"


def best_checkpoint(checkpoints: Sequence[Point], *, has_validation: bool) -> Best | None:
    """The checkpoint with the lowest validation loss (full-validation where present); the
    lowest training loss when the job has no validation file. The earliest wins a tie."""
    best: Best | None = None
    for point in checkpoints:
        if has_validation:
            value, metric = point.valid_loss, point.valid_metric
        else:
            value, metric = point.train_loss, "train_loss"
        if value is not None and (best is None or value < best.value):
            best = Best(point, metric, value)
    return best


def has_validation(checkpoints: Sequence[Point], validation_file: str | None) -> bool:
    """Whether the job is judged by its validation loss: it has a validation file, or any of
    its checkpoints reported a validation loss. Without either, the training loss decides."""
    return bool(validation_file) or any(point.valid_loss is not None for point in checkpoints)


def best_of(checkpoints: Iterable[Any], *, validation_file: str | None) -> tuple[list[Point], Best | None]:
    """The Points of stored `checkpoints` (in step order) and the best of them: the one rule
    that the job page, the curves, compare and the exports all ask."""
    made = points(checkpoints)
    return made, best_checkpoint(made, has_validation=has_validation(made, validation_file))


# --- Rules ----------------------------------------------------------------------------------


def overfitting(checkpoints: Sequence[Point], *, rises: int = 2, has_validation: bool = True) -> str | None:
    """The validation loss rose on `rises` consecutive checkpoints while the training loss did not."""
    if rises < 1 or not has_validation:
        return None
    recent = [point for point in checkpoints if point.valid_loss is not None][-(rises + 1) :]
    if len(recent) < rises + 1:
        return None
    losses = [point.valid_loss for point in recent]
    if not all(later > earlier for earlier, later in zip(losses, losses[1:], strict=False)):
        return None
    trains = [point.train_loss for point in recent]
    if None not in trains and trains[-1] > trains[0]:
        return None  # both rising: not overfitting (that is the divergence rule's business)
    path = " → ".join(_loss(value) for value in losses)
    plural = "checkpoint" if rises == 1 else "checkpoints"
    message = f"Validation loss has risen for {rises} {plural} ({path})"
    best = best_checkpoint(checkpoints, has_validation=True)
    if best is not None:
        message += f"; the best checkpoint is epoch {best.point.epoch} ({best.point.upstream_id})"
    return message


def diverged(checkpoints: Sequence[Point], *, factor: float = 2.0) -> str | None:
    """The latest checkpoint's training or validation loss is NaN or infinite, or at least
    `factor` times the one before."""
    if not checkpoints:
        return None
    latest = checkpoints[-1]
    if latest.non_finite:
        names = ", ".join(key.replace("_", " ") for key in latest.non_finite)
        return f"The {names} of epoch {latest.epoch} is not a number (NaN or infinite)"
    if len(checkpoints) < 2:
        return None
    previous = checkpoints[-2]
    for label, before, now in (
        ("training loss", previous.train_loss, latest.train_loss),
        ("validation loss", previous.valid_loss, latest.valid_loss),
    ):
        if before is not None and now is not None and before > 0 and now >= before * factor:
            return (
                f"The {label} jumped from {_loss(before)} to {_loss(now)} "
                f"(×{now / before:.1f}) between epochs {previous.epoch} and {latest.epoch}"
            )
    return None


def eta_slipped(
    *,
    first_estimate: dt.datetime | None,
    first_seen_at: dt.datetime | None,
    estimate: dt.datetime | None,
    percent: int = 50,
    minutes: int = 15,
) -> str | None:
    """The finish estimate moved later by more than `percent`% of the time the first estimate
    of this run had left, and by at least `minutes`."""
    if first_estimate is None or first_seen_at is None or estimate is None:
        return None
    left = (first_estimate - first_seen_at).total_seconds()
    slip = (estimate - first_estimate).total_seconds()
    if left <= 0 or slip < minutes * 60 or slip * 100 <= left * percent:
        return None
    return (
        f"The estimated finish moved {span(slip)} later than first estimated "
        f"({slip * 100 / left:.0f}% of the {span(left)} it had left)"
    )


def slow(
    samples: Sequence[tuple[dt.datetime, int]],
    *,
    now: dt.datetime,
    window_minutes: int = 15,
    percent: int = 40,
) -> str | None:
    """Steps per minute over the last `window_minutes` under `percent`% of the job's own median
    so far. `samples` are (time, trained_steps) in time order. No progress at all in the window
    is a stall, which has its own rule: not slow."""
    window = dt.timedelta(minutes=window_minutes)
    if len(samples) < 3 or now - samples[0][0] < window * 2:
        return None  # not enough history to know what this job's normal pace is
    start = now - window
    before = [sample for sample in samples if sample[0] <= start]
    if not before:
        return None
    base_at, base_steps = before[-1]
    last_at, last_steps = samples[-1]
    recent_minutes = (last_at - base_at).total_seconds() / 60
    if recent_minutes <= 0 or last_steps <= base_steps:
        return None
    recent = (last_steps - base_steps) / recent_minutes
    rates = [
        (later[1] - earlier[1]) / ((later[0] - earlier[0]).total_seconds() / 60)
        for earlier, later in zip(samples, samples[1:], strict=False)
        if later[0] > earlier[0] and later[0] <= base_at
    ]
    rates = [rate for rate in rates if rate > 0]
    if len(rates) < 2:
        return None
    median = statistics.median(rates)
    if recent * 100 >= median * percent:
        return None
    return (
        f"{recent:.1f} steps a minute over the last {window_minutes} min, "
        f"{recent * 100 / median:.0f}% of this job's usual {median:.1f}"
    )
